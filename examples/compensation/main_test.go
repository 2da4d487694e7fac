package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out))
	assert.Equal(t, `order-1: Ada buys a laptop and a mouse
  ok      ORDER_CREATED
  ok      ORDER_VALIDATED
  ok      PAYMENT_PROCESSED
  ok      INVENTORY_RESERVED
  ok      ORDER_SHIPPED
  ok      ORDER_COMPLETED
  status: completed

order-2: Charles buys a laptop, beyond his credit
  ok      ORDER_CREATED
  ok      ORDER_VALIDATED
  failed  PAYMENT_PROCESSED  orderflow: insufficient credit: 999.99 needed, 500.00 of 500.00 available
  undo    ORDER_CANCELED
  status: failed

order-3: Ada buys 3 keyboards, 1 in stock
  ok      ORDER_CREATED
  ok      ORDER_VALIDATED
  ok      PAYMENT_PROCESSED
  failed  INVENTORY_RESERVED orderflow: insufficient stock: 3 more of "keyboard" wanted, 1 available
  undo    PAYMENT_REFUNDED
  undo    ORDER_CANCELED
  status: failed

order-4: Charles buys a mouse, no courier delivers
  ok      ORDER_CREATED
  ok      ORDER_VALIDATED
  ok      PAYMENT_PROCESSED
  ok      INVENTORY_RESERVED
  failed  ORDER_SHIPPED      no courier serves this address
  undo    INVENTORY_RELEASED
  undo    PAYMENT_REFUNDED
  undo    ORDER_CANCELED
  status: failed

order-5: Grace, unregistered, buys an abacus and a mouse at the wrong price
  rejected with 3 problems: orderflow: invalid order: customer.email: no registered customer "grace@example.com"; items[0].name: no product "abacus"; items[1].price: "mouse" costs 19.99, not 9.99
  nothing created: orderflow: order not found: "order-5"

credit used:
  ada@example.com       1019.98 of  2000.00
  charles@example.com      0.00 of   500.00
stock:
  laptop    2 added,  1 available, 1 held
  mouse    10 added,  9 available, 1 held
  keyboard  1 added,  1 available, 0 held
charges:
  CH-000001  order-1   1019.98  charged
  CH-000002  order-3    149.97  refunded
  CH-000003  order-4     19.99  refunded
reservations:
  RSV-000001  order-1  held
  RSV-000002  order-4  released
shipments:
  TRK-000001  order-1  booked  to 12 St James's Square, London
`, out.String())
}
