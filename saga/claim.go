package saga

import (
	"errors"
	"log/slog"
)

// claimLoop runs while the coordinator does, when its store is shared with
// other processes. Every ClaimInterval it counts the work across the
// processes (Census), claims instances that no live process owns up to its
// share and its free slots, and records the signals forwarded to it. While
// instances are waiting it also claims each time a slot frees up, so that
// offered work does not wait for the next tick.
func (c *Coordinator[S]) claimLoop() {
	defer c.workers.Done()
	tick := c.clock.NewTicker(c.cfg.ClaimInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-c.stopping:
			<-c.quit
			return
		case <-c.sharing.room:
			c.claim()
			continue
		case <-tick.C():
		}
		if err := c.census(c.runCtx); err != nil && c.runCtx.Err() == nil {
			c.log.LogAttrs(c.runCtx, slog.LevelWarn, "saga: census failed, will try again",
				slog.String("definition", c.def.name), slog.Any("error", err))
		}
		c.claim()
		c.deliver()
	}
}

// deliverBatch is the most forwarded signals deliver records per tick.
const deliverBatch = 256

// deliver records the signals other processes forwarded to the instances
// this one owns, and removes them from the inbox. A signal for an instance
// that has ended or moved on is dropped or left for its new owner.
func (c *Coordinator[S]) deliver() {
	sigs, err := c.claimer.Inbox(c.runCtx, c.def.name, deliverBatch)
	if err != nil {
		if c.runCtx.Err() == nil {
			c.log.LogAttrs(c.runCtx, slog.LevelWarn, "saga: reading forwarded signals failed, will try again",
				slog.String("definition", c.def.name), slog.Any("error", err))
		}
		return
	}
	var done []int64
	for _, sig := range sigs {
		err := c.signal(c.runCtx, sig.SagaID, sig.Name, sig.Payload, sig.DedupKey, false)
		switch {
		case err == nil:
			done = append(done, sig.ID)
		case errors.Is(err, ErrFinished) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidArgument):
			c.log.LogAttrs(c.runCtx, slog.LevelWarn, "saga: dropping forwarded signal",
				slog.String("saga_id", sig.SagaID), slog.String("signal", sig.Name), slog.Any("error", err))
			done = append(done, sig.ID)
		case errors.Is(err, ErrFenced): // its new owner will take it
		default:
			c.log.LogAttrs(c.runCtx, slog.LevelWarn, "saga: recording forwarded signal failed, will try again",
				slog.String("saga_id", sig.SagaID), slog.String("signal", sig.Name), slog.Any("error", err))
		}
	}
	if len(done) == 0 {
		return
	}
	if err := c.claimer.Delivered(c.runCtx, done); err != nil && c.runCtx.Err() == nil {
		// They stay queued and are recorded again, as duplicates.
		c.log.LogAttrs(c.runCtx, slog.LevelWarn, "saga: removing delivered signals failed",
			slog.String("definition", c.def.name), slog.Any("error", err))
	}
}

// claim takes over what it can and queues it for the workers.
func (c *Coordinator[S]) claim() {
	limit := c.claimLimit()
	if limit <= 0 {
		return
	}
	ids, err := c.claimer.Claim(c.runCtx, c.def.name, limit)
	if err != nil {
		if c.runCtx.Err() == nil {
			c.log.LogAttrs(c.runCtx, slog.LevelWarn, "saga: claim failed, will try again",
				slog.String("definition", c.def.name), slog.Any("error", err))
		}
		return
	}
	if len(ids) < limit { // none left to take: wait for the next census
		c.sharing.waiting.Store(0)
	} else {
		c.sharing.waiting.Add(-int64(len(ids)))
	}
	if len(ids) == 0 {
		return
	}
	found, err := c.recover(c.runCtx, ids)
	if err != nil {
		// Hand them back to a later claim, here or elsewhere.
		c.log.LogAttrs(c.runCtx, slog.LevelWarn, "saga: cannot resume claimed instances",
			slog.String("definition", c.def.name), slog.Any("error", err))
		if err := c.claimer.Release(c.runCtx, ids); err != nil {
			c.log.LogAttrs(c.runCtx, slog.LevelWarn, "saga: cannot release instances",
				slog.String("definition", c.def.name), slog.Any("error", err))
		}
		return
	}
	resumed := 0
	for _, inst := range found {
		if !c.admit(inst) {
			continue
		}
		resumed++
		c.recovered.Add(1)
		select {
		case c.ready <- inst:
		case <-c.quit:
			return
		}
	}
	c.log.LogAttrs(c.runCtx, slog.LevelInfo, "saga: claimed instances",
		slog.String("definition", c.def.name), slog.Int("claimed", len(ids)),
		slog.Int("resumed", resumed))
}
