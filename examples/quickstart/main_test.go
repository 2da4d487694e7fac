package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// uuidRE matches the generated ID of the first order.
var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func TestRun(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out))

	ids := uuidRE.FindAllString(out.String(), -1)
	require.Len(t, ids, 2, "the first order's ID, placed and ended")
	assert.Equal(t, ids[0], ids[1])
	assert.Equal(t, `order <uuid>: order accepted
  ORDER_CREATED      ORDER     customer="Ada Lovelace" items=1 total_amount=999.99
  ORDER_VALIDATED    ORDER     total_amount=999.99
  PAYMENT_PROCESSED  PAYMENT   amount=999.99 charge_id=CH-000001
  INVENTORY_RESERVED INVENTORY items=1 reservation_id=RSV-000001
  ORDER_SHIPPED      SHIPPING  tracking_number=TRK-000001
  ORDER_COMPLETED    ORDER     total_amount=999.99
order <uuid>: completed, total 999.99

order-01  mouse     completed   19.99
order-02  keyboard  completed   49.99
order-03  monitor   completed  189.00
order-04  headset   completed   79.50
order-05  webcam    completed   59.00
order-06  mouse     completed   19.99
order-07  keyboard  failed      49.99  no courier serves this address
          undone by INVENTORY_RELEASED, PAYMENT_REFUNDED, ORDER_CANCELED
order-08  monitor   completed  189.00
order-09  headset   completed   79.50
order-10  webcam    completed   59.00

health: healthy (breakers: payment closed, inventory closed, shipping closed)
health: stopped (10 orders completed, 1 compensated)
`, uuidRE.ReplaceAllString(out.String(), "<uuid>"))
}
