package saga

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkPublish measures the fan-out of one event to subscribers: none,
// subscribers to every event, and subscribers to one saga among many.
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name      string
		all, byID int
	}{
		{"none", 0, 0},
		{"all=1", 1, 0},
		{"all=16", 16, 0},
		{"byID=1000", 0, 1000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h hub
			var subs []*Subscription
			for i := range bc.all + bc.byID {
				id := ""
				if i >= bc.all {
					id = "saga-" + strconv.Itoa(i)
				}
				s := &Subscription{hub: &h, sagaID: id, ch: make(chan Event, 256)}
				h.add(s)
				subs = append(subs, s)
			}
			var wg sync.WaitGroup
			for _, s := range subs { // readers keep up, as a live dashboard would
				wg.Go(func() {
					for range s.ch {
					}
				})
			}
			e := Event{SagaID: "saga-" + strconv.Itoa(bc.all), Run: "r", Seq: 1, Type: EventStepStarted, Time: time.Unix(0, 0), Step: "payment", Attempt: 1}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				h.publish(&e)
			}
			b.StopTimer()
			h.close()
			wg.Wait()
		})
	}
}
