package saga

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"
)

// generators holds ChaCha8 generators, each seeded from crypto/rand when it
// is made. ChaCha8 is a cryptographically strong generator, so the IDs it
// makes are as hard to guess as uuid.NewString's, without reading the
// system's randomness for each one.
var generators = sync.Pool{New: func() any {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (see crypto/rand.Read)
	return rand.NewChaCha8(seed)
}}

// newUUID returns a random (version 4) UUID in its canonical text form. It
// is the default Config.NewID.
func newUUID() string {
	g := generators.Get().(*rand.ChaCha8)
	var u uuid.UUID
	binary.LittleEndian.PutUint64(u[:8], g.Uint64())
	binary.LittleEndian.PutUint64(u[8:], g.Uint64())
	generators.Put(g)
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
