package orderflow

import (
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// window makes a bundled service forget the operations it recorded longer
// ago than its KeepFor, so that its memory follows the orders in flight
// rather than every order ever placed.
type window struct {
	keep  time.Duration // 0: remember forever
	clock clock.Clock
	keys  []timedKey // oldest first; keys[head:] are remembered
	head  int
}

type timedKey struct {
	key string
	at  time.Time
}

// remember notes that key was just added to m, and drops from m the keys
// that have outlived the window. It expects the service's lock held.
func remember[V any](w *window, m map[string]*V, key string) {
	if w.keep <= 0 {
		return
	}
	now := w.clock.Now()
	w.keys = append(w.keys, timedKey{key, now})
	for w.head < len(w.keys) && now.Sub(w.keys[w.head].at) > w.keep {
		delete(m, w.keys[w.head].key)
		w.keys[w.head] = timedKey{}
		w.head++
	}
	if w.head > 1024 && w.head*2 >= len(w.keys) { // reclaim the forgotten prefix
		n := copy(w.keys, w.keys[w.head:])
		clear(w.keys[n:])
		w.keys, w.head = w.keys[:n], 0
	}
}
