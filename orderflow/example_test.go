package orderflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

func Example() {
	ctx := context.Background()
	sys, err := orderflow.New(orderflow.Config{
		Engine: saga.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
	})
	if err != nil {
		panic(err)
	}
	if err := sys.Startup(ctx); err != nil {
		panic(err)
	}
	defer sys.Shutdown(ctx)

	r, err := sys.ProcessOrder(ctx, orderflow.OrderRequest{
		Customer: orderflow.Customer{Name: "Ada Lovelace", Email: "ada@example.com", Address: "12 St James's Square, London"},
		Items:    []orderflow.Item{{Name: "laptop", Price: 99999, Quantity: 1}},
	})
	if err != nil {
		panic(err)
	}
	w, err := sys.Subscribe(ctx, r.OrderID)
	if err != nil {
		panic(err)
	}
	for e := range w.Events() { // closed after the last event
		fmt.Println(e.Type, e.Service)
	}
	st, err := sys.GetStatus(ctx, r.OrderID)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Status, st.Total)
	// Output:
	// ORDER_CREATED ORDER
	// ORDER_VALIDATED ORDER
	// PAYMENT_PROCESSED PAYMENT
	// INVENTORY_RESERVED INVENTORY
	// ORDER_SHIPPED SHIPPING
	// ORDER_COMPLETED ORDER
	// completed 999.99
}

func ExampleOrderRequest_json() {
	body := `{
		"customer_data": {"name": "Ada", "email": "ada@example.com", "address": "1 Main St"},
		"items": [{"name": "pen", "price": 0.10, "quantity": 3}, {"name": "ink", "price": 19.99, "quantity": 1}]
	}`
	var req orderflow.OrderRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		panic(err)
	}
	for _, it := range req.Items {
		fmt.Println(it.Name, it.Price, "×", it.Quantity, "=", it.Subtotal())
	}

	err := json.Unmarshal([]byte(`{"items": [{"name": "pen", "price": 0.105, "quantity": 1}]}`), &req)
	fmt.Println(errors.Is(err, orderflow.ErrInvalidAmount))
	// Output:
	// pen 0.10 × 3 = 0.30
	// ink 19.99 × 1 = 19.99
	// true
}

func ExampleValidationError() {
	sys, err := orderflow.New(orderflow.Config{})
	if err != nil {
		panic(err)
	}
	_, err = sys.ProcessOrder(context.Background(), orderflow.OrderRequest{
		Customer: orderflow.Customer{Name: "Ada", Email: "ada.example.com", Address: "1 Main St"},
		Items:    []orderflow.Item{{Name: "pen", Price: 0, Quantity: 1}},
	})
	var verr *orderflow.ValidationError
	if errors.As(err, &verr) {
		for _, p := range verr.Problems {
			fmt.Println(p.Field+":", p.Message)
		}
	}
	fmt.Println(errors.Is(err, orderflow.ErrInvalidOrder))
	// Output:
	// customer.email: malformed email address "ada.example.com"
	// items[0].price: must be positive, got 0.00
	// true
}
