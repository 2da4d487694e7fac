package saga

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

var jsonCases = []string{
	``, ` `, `null`, `true`, `false`, `nul`, `nulll`, `tru`, `True`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`,
	`1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `123abc`, `""`, `"a"`, `"\""`, `"\\"`, `"\/"`,
	`"\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, "\"\x01\"", "\"\x7f\"",
	"\"\xff\xfe\"", `"unterminated`, `"a" "b"`, `{}`, `[]`, `{ }`, `[ ]`, `{"a":1}`, `{"a" : 1 , "b":[1,2,{}]}`,
	`{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `[1 2]`, `[1,[2,[3]]]`,
	`[1,[2,[3]]`, `]`, `}`, `[}`, `{]`, " \t\n\r{\"a\":[true,false,null]}\r\n ", `{"a":1}x`, `[[]]`, `[{}]`,
	`{"a":{"b":{"c":"d"}}}`, `"\u2028"`, `"日本"`, `-01`, `-a`, `1.e5`, `[-]`, `{"":""}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range jsonCases {
		assert.Equal(t, json.Valid([]byte(s)), validJSON([]byte(s)), "%.60q", s)
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonCases {
		if len(s) < 200 {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		if want, got := json.Valid([]byte(s)), validJSON([]byte(s)); want != got {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", s, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	state := []byte(`{"order_id":"0f8fad5b-d9cb-469f-a165-70867728950e","customer":{"name":"Ada Lovelace",` +
		`"email":"ada@example.com","address":"12 St James's Square, London"},"items":[{"name":"laptop",` +
		`"price":999.99,"quantity":1},{"name":"mouse","price":25.00,"quantity":2}],"total_amount":1049.99,` +
		`"status":"inventory_reserved","charge_id":"CH-000042","reservation_id":"RSV-000042"}`)
	b.Run("saga", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !validJSON(state) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(state) {
				b.Fatal("invalid")
			}
		}
	})
}
