package saga

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// sharing is what a coordinator on a shared store (a [Claimer]) knows of
// the work on its definition across the processes, from the last census
// and what it did itself since.
type sharing struct {
	processes  atomic.Int64  // live processes running the definition; 0 before the first census
	unfinished atomic.Int64  // unfinished instances, plus those started here since the census
	waiting    atomic.Int64  // instances no process owns, plus those offered here since, less those claimed here
	offered    atomic.Int64  // instances this coordinator has offered, in all
	room       chan struct{} // poked when a slot frees up while work may be waiting
}

// share is how many unfinished instances one process should hold: the
// unfinished ones divided among the processes, rounded up. It is 0 when
// the coordinator knows of no other process.
func (s *sharing) share() int64 {
	p := s.processes.Load()
	if p <= 1 {
		return 0
	}
	return (s.unfinished.Load() + p - 1) / p
}

// held is how many unfinished instances this coordinator owns.
func (c *Coordinator[S]) held() int64 { return int64(c.live.len() + c.stuck.len()) }

// census counts the work across the processes again.
func (c *Coordinator[S]) census(ctx context.Context) error {
	n, err := c.claimer.Census(ctx, c.def.name)
	if err != nil {
		return err
	}
	c.sharing.processes.Store(int64(n.Processes))
	c.sharing.unfinished.Store(int64(n.Unfinished))
	c.sharing.waiting.Store(int64(n.Waiting))
	return nil
}

// shouldOffer reports whether Start should offer its new instance to the
// other processes rather than run it here: whether this one holds a
// quarter more than its share already, with the share counting the new
// instance. So that a cluster that cannot keep up does not pile up
// offers, it stops offering once MaxInFlight offers are waiting; Start then
// runs the instance here, or refuses it at capacity.
func (c *Coordinator[S]) shouldOffer() bool {
	if c.claimer == nil {
		return false
	}
	c.sharing.unfinished.Add(1)
	share := c.sharing.share()
	if share == 0 || c.held() < share+share/4 {
		return false
	}
	return c.sharing.waiting.Load() < int64(c.cfg.MaxInFlight)
}

// offer stores new instance inst for whichever process claims it first,
// and tells this process's subscribers and hooks of its first events. inst
// is not run here.
func (c *Coordinator[S]) offer(ctx context.Context, inst *instance[S], id string, raw []byte, deadline time.Time) error {
	inst.id, inst.run = id, c.cfg.NewID()
	now := c.clock.Now()
	batch := getBatch()
	events := c.startEvents(*batch, raw, deadline, now)
	defer putBatch(batch, events)
	c.stamp(inst, events, now)
	if err := c.claimer.Offer(ctx, events); err != nil {
		return err
	}
	c.sharing.waiting.Add(1)
	c.sharing.offered.Add(1)
	inst.mu.Lock()
	c.applyRecorded(inst, events)
	inst.mu.Unlock()
	c.log.LogAttrs(ctx, slog.LevelDebug, "saga: offered instance",
		slog.String("saga_id", id), slog.String("definition", c.def.name))
	return nil
}

// claimLimit is how many instances a claim may take: as many as there are
// free slots, and, when other processes share the work, no more than
// brings this one up to its share.
func (c *Coordinator[S]) claimLimit() int {
	free := int64(cap(c.slots) - len(c.slots))
	if share := c.sharing.share(); share > 0 {
		free = min(free, share-c.held())
	}
	return int(max(free, 0))
}

// roomFreed tells the claim loop that a slot was freed while work may be
// waiting elsewhere, so that it claims now rather than at its next tick.
func (c *Coordinator[S]) roomFreed() {
	if c.claimer == nil || c.sharing.waiting.Load() <= 0 {
		return
	}
	select {
	case c.sharing.room <- struct{}{}:
	default:
	}
}
