package saga

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// registry is a concurrent map from saga ID to instance, sharded so that
// instances do not contend on one lock. Each shard counts its own
// instances, on a cache line of its own, so that adding and removing
// instances on different processors writes no memory they share.
type registry[S any] struct {
	seed   maphash.Seed
	shards [32]struct {
		mu sync.Mutex
		m  map[string]*instance[S]
		n  atomic.Int64
		_  [64 - 24]byte
	}
}

func newRegistry[S any]() *registry[S] {
	r := &registry[S]{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*instance[S])
	}
	return r
}

func (r *registry[S]) shard(id string) int {
	return int(maphash.String(r.seed, id) % uint64(len(r.shards)))
}

// add stores inst under id unless the ID is taken, and reports whether it
// did.
func (r *registry[S]) add(id string, inst *instance[S]) bool {
	sh := &r.shards[r.shard(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[id]; ok {
		return false
	}
	sh.m[id] = inst
	sh.n.Add(1)
	return true
}

func (r *registry[S]) get(id string) *instance[S] {
	sh := &r.shards[r.shard(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[id]
}

// remove deletes id and returns what was stored, or nil.
func (r *registry[S]) remove(id string) *instance[S] {
	sh := &r.shards[r.shard(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	inst, ok := sh.m[id]
	if ok {
		delete(sh.m, id)
		sh.n.Add(-1)
	}
	return inst
}

func (r *registry[S]) len() int {
	n := int64(0)
	for i := range r.shards {
		n += r.shards[i].n.Load()
	}
	return int(n)
}

// each calls f for every instance, one shard locked at a time.
func (r *registry[S]) each(f func(*instance[S])) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		insts := make([]*instance[S], 0, len(sh.m))
		for _, inst := range sh.m {
			insts = append(insts, inst)
		}
		sh.mu.Unlock()
		for _, inst := range insts {
			f(inst)
		}
	}
}
