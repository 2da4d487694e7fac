package orderflow_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
)

// allStatuses lists the declared statuses in order.
var allStatuses = []orderflow.Status{
	orderflow.StatusPending,
	orderflow.StatusValidated,
	orderflow.StatusPaymentProcessed,
	orderflow.StatusInventoryReserved,
	orderflow.StatusShipped,
	orderflow.StatusCompleted,
	orderflow.StatusCompensating,
	orderflow.StatusFailed,
}

func TestStatusCanTransition(t *testing.T) {
	t.Parallel()
	type edge struct{ from, to orderflow.Status }
	// The table of status.go's doc comment, written out edge by edge.
	allowed := map[edge]bool{
		{orderflow.StatusPending, orderflow.StatusValidated}:                  true,
		{orderflow.StatusValidated, orderflow.StatusPaymentProcessed}:         true,
		{orderflow.StatusPaymentProcessed, orderflow.StatusInventoryReserved}: true,
		{orderflow.StatusInventoryReserved, orderflow.StatusShipped}:          true,
		{orderflow.StatusShipped, orderflow.StatusCompleted}:                  true,

		{orderflow.StatusPending, orderflow.StatusCompensating}:           true,
		{orderflow.StatusValidated, orderflow.StatusCompensating}:         true,
		{orderflow.StatusPaymentProcessed, orderflow.StatusCompensating}:  true,
		{orderflow.StatusInventoryReserved, orderflow.StatusCompensating}: true,
		{orderflow.StatusShipped, orderflow.StatusCompensating}:           true,

		{orderflow.StatusCompensating, orderflow.StatusFailed}: true,
	}
	// Every declared status, the zero value, and values out of range.
	statuses := append([]orderflow.Status{0}, allStatuses...)
	statuses = append(statuses, orderflow.StatusFailed+1, 200, 255)

	seen := 0
	for _, from := range statuses {
		for _, to := range statuses {
			want := allowed[edge{from, to}]
			if want {
				seen++
			}
			assert.Equal(t, want, from.CanTransition(to), "%v → %v", from, to)
		}
	}
	require.Equal(t, len(allowed), seen, "every allowed edge was checked")
}

func TestStatusTerminal(t *testing.T) {
	t.Parallel()
	for _, s := range append([]orderflow.Status{0, 9, 255}, allStatuses...) {
		want := s == orderflow.StatusCompleted || s == orderflow.StatusFailed
		assert.Equal(t, want, s.Terminal(), "%v", s)
		if s.Terminal() {
			for _, next := range allStatuses {
				assert.False(t, s.CanTransition(next), "terminal %v → %v", s, next)
			}
		}
	}
}

func TestStatusValid(t *testing.T) {
	t.Parallel()
	for _, s := range allStatuses {
		assert.True(t, s.Valid(), "%v", s)
	}
	for _, s := range []orderflow.Status{0, orderflow.StatusFailed + 1, 255} {
		assert.False(t, s.Valid(), "%v", s)
	}
}

func TestStatusNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    orderflow.Status
		want string
	}{
		{orderflow.StatusPending, "pending"},
		{orderflow.StatusValidated, "validated"},
		{orderflow.StatusPaymentProcessed, "payment_processed"},
		{orderflow.StatusInventoryReserved, "inventory_reserved"},
		{orderflow.StatusShipped, "shipped"},
		{orderflow.StatusCompleted, "completed"},
		{orderflow.StatusCompensating, "compensating"},
		{orderflow.StatusFailed, "failed"},
	}
	require.Len(t, tests, len(allStatuses))
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, tt.s.String())

			text, err := tt.s.MarshalText()
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(text))

			var back orderflow.Status
			require.NoError(t, back.UnmarshalText(text))
			assert.Equal(t, tt.s, back)
		})
	}
}

func TestStatusStringOutOfRange(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "Status(0)", orderflow.Status(0).String())
	assert.Equal(t, "Status(9)", orderflow.Status(9).String())
	assert.Equal(t, "Status(255)", orderflow.Status(255).String())
}

func TestStatusMarshalTextRejectsInvalid(t *testing.T) {
	t.Parallel()
	for _, s := range []orderflow.Status{0, orderflow.StatusFailed + 1, 255} {
		_, err := s.MarshalText()
		assert.Error(t, err, "%v", s)
		_, err = json.Marshal(s)
		assert.Error(t, err, "%v", s)
	}
}

func TestStatusUnmarshalTextRejectsUnknown(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "Pending", "PENDING", " pending", "pending ", "payment-processed", "Status(1)", "1", "unknown"} {
		s := orderflow.StatusShipped
		err := s.UnmarshalText([]byte(in))
		assert.Error(t, err, "%q", in)
		assert.Equal(t, orderflow.StatusShipped, s, "%q leaves the status unchanged", in)
	}
}

func TestStatusJSONRoundTrip(t *testing.T) {
	t.Parallel()
	type doc struct {
		Status orderflow.Status `json:"status"`
	}
	for _, s := range allStatuses {
		b, err := json.Marshal(doc{Status: s})
		require.NoError(t, err)
		assert.JSONEq(t, fmt.Sprintf(`{"status":%q}`, s.String()), string(b))

		var back doc
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, s, back.Status)
	}
	var back doc
	assert.Error(t, json.Unmarshal([]byte(`{"status":"shipping"}`), &back))
	assert.Error(t, json.Unmarshal([]byte(`{"status":3}`), &back))
}

func TestStatusTransitionError(t *testing.T) {
	t.Parallel()
	var err error = &orderflow.TransitionError{From: orderflow.StatusCompleted, To: orderflow.StatusPending}
	wrapped := fmt.Errorf("advancing order: %w", err)
	assert.ErrorIs(t, wrapped, orderflow.ErrInvalidTransition)

	var te *orderflow.TransitionError
	require.ErrorAs(t, wrapped, &te)
	assert.Equal(t, orderflow.StatusCompleted, te.From)
	assert.Equal(t, orderflow.StatusPending, te.To)
	assert.Contains(t, err.Error(), "completed")
	assert.Contains(t, err.Error(), "pending")
}
