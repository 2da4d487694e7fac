package saga

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// HealthState is the coordinator's overall condition.
type HealthState uint8

// The states Health reports.
const (
	// HealthStarting: Startup has not finished.
	HealthStarting HealthState = iota + 1
	// HealthHealthy: running, nothing needs attention.
	HealthHealthy
	// HealthDegraded: running, but something needs attention; see Reasons.
	HealthDegraded
	// HealthShuttingDown: Shutdown has begun; no new instances are taken.
	HealthShuttingDown
	// HealthStopped: Shutdown has returned.
	HealthStopped
)

// String returns the state's name, such as "degraded".
func (s HealthState) String() string {
	switch s {
	case HealthStarting:
		return "starting"
	case HealthHealthy:
		return "healthy"
	case HealthDegraded:
		return "degraded"
	case HealthShuttingDown:
		return "shutting_down"
	case HealthStopped:
		return "stopped"
	}
	return fmt.Sprintf("HealthState(%d)", uint8(s))
}

// MarshalText encodes the state as its name.
func (s HealthState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Serving reports whether the coordinator takes new instances.
func (s HealthState) Serving() bool { return s == HealthHealthy || s == HealthDegraded }

// Health is a point-in-time report of a coordinator.
type Health struct {
	State HealthState `json:"state"`
	// Reasons says why the state is degraded; empty otherwise.
	Reasons []string `json:"reasons,omitempty"`

	InFlight int `json:"in_flight"` // instances running now
	Queued   int `json:"queued"`    // of which waiting for a worker
	Capacity int `json:"capacity"`  // MaxInFlight

	Running      int `json:"running"`      // running now, forward path
	Compensating int `json:"compensating"` // running now, compensating
	Stuck        int `json:"stuck"`        // stuck now
	Completed    int `json:"completed"`    // completed since Startup
	Compensated  int `json:"compensated"`  // compensated since Startup
	Recovered    int `json:"recovered"`    // resumed by Startup, or claimed: offered by another process or left by one that had gone
	Offered      int `json:"offered"`      // started here but offered to other processes, which held less (shared stores)

	// StuckIDs lists up to 100 stuck instances, sorted.
	StuckIDs []string `json:"stuck_ids,omitempty"`
	// Breakers gives the state of every circuit breaker by name.
	Breakers map[string]BreakerState `json:"breakers,omitempty"`
	// OldestRunning is the age of the oldest running instance.
	OldestRunning time.Duration `json:"oldest_running"`
	// StoreError is the store's Ping error, empty when it is healthy.
	StoreError string `json:"store_error,omitempty"`
}

// Health reports the coordinator's state. It walks the running instances,
// so it costs time proportional to their number; call it for probes and
// dashboards, not per request. The counts move just after an instance's
// last event is published: a subscriber that has just received that event
// may, for a moment, still find the instance counted in flight.
func (c *Coordinator[S]) Health(ctx context.Context) Health {
	now := c.clock.Now()
	h := Health{
		Capacity:    c.cfg.MaxInFlight,
		Completed:   int(c.completed.Load()),
		Compensated: int(c.compensated.Load()),
		Offered:     int(c.sharing.offered.Load()),
	}
	phase := c.phase.Load()
	switch phase {
	case phaseNew:
		h.State = HealthStarting
	case phaseRunning:
		h.State = HealthHealthy
	case phaseStopping:
		h.State = HealthShuttingDown
	default:
		h.State = HealthStopped
	}
	if phase != phaseNew {
		c.life.RLock()
		h.Recovered = int(c.recovered.Load())
		unrecoverable := c.unrecoverable.Load()
		c.life.RUnlock()
		if unrecoverable > 0 {
			h.Reasons = append(h.Reasons, fmt.Sprintf("%d instances could not be recovered", unrecoverable))
		}
	}
	if phase != phaseNew { // Startup made the queue before leaving phaseNew
		h.Queued = len(c.ready)
	}

	var oldest time.Time
	c.live.each(func(inst *instance[S]) {
		inst.mu.Lock()
		status, created := inst.status, inst.created
		inst.mu.Unlock()
		h.InFlight++
		if status == StatusCompensating {
			h.Compensating++
		} else {
			h.Running++
		}
		if oldest.IsZero() || created.Before(oldest) {
			oldest = created
		}
	})
	if !oldest.IsZero() {
		h.OldestRunning = now.Sub(oldest)
	}
	c.stuck.each(func(inst *instance[S]) { h.StuckIDs = append(h.StuckIDs, inst.id) })
	h.Stuck = len(h.StuckIDs)
	slices.Sort(h.StuckIDs)
	if len(h.StuckIDs) > 100 {
		h.StuckIDs = h.StuckIDs[:100]
	}
	if h.Stuck > 0 {
		h.Reasons = append(h.Reasons, fmt.Sprintf("%d instances stuck", h.Stuck))
	}

	names := make([]string, 0, len(c.byName))
	for name := range c.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) > 0 {
		h.Breakers = make(map[string]BreakerState, len(names))
	}
	for _, name := range names {
		st := c.byName[name].current(now)
		h.Breakers[name] = st
		if st != BreakerClosed {
			h.Reasons = append(h.Reasons, fmt.Sprintf("breaker %s %v", name, st))
		}
	}

	if phase == phaseRunning || phase == phaseStopping {
		if err := c.store.Ping(ctx); err != nil {
			h.StoreError = err.Error()
			h.Reasons = append(h.Reasons, "store: "+err.Error())
		}
		if h.InFlight*10 >= h.Capacity*9 {
			h.Reasons = append(h.Reasons, fmt.Sprintf("%d of %d in-flight slots used", h.InFlight, h.Capacity))
		}
	}
	if h.State == HealthHealthy && len(h.Reasons) > 0 {
		h.State = HealthDegraded
	}
	return h
}
