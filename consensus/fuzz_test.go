package consensus

import (
	"encoding/json"
	"testing"

	"github.com/pgquorum/pgquorum/api"
)

// FuzzDecodePrimary feeds arbitrary peer answers to the vote decoder: it
// never panics, a vote comes only from a 200 whose JSON names that very node,
// and a 503 is never an error.
func FuzzDecodePrimary(f *testing.F) {
	f.Add(200, []byte(`{"Primary":"node1"}`))
	f.Add(200, []byte(`{"Primary":null}`))
	f.Add(200, []byte(`{"Primary":""}`))
	f.Add(200, []byte(`{"Primary":"node1","Primary":"node2"}`))
	f.Add(200, []byte(`{"primary":"node1"}`))
	f.Add(200, []byte(`["node1"]`))
	f.Add(503, []byte(`{"State":"Down"}`))
	f.Add(509, []byte(`{"Primary":"node1"}`))
	f.Add(302, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		named, err := decodePrimary(status, body)
		if named != "" {
			if status != 200 || err != nil {
				t.Fatalf("vote %q from status %d (err %v)", named, status, err)
			}
			var b api.PrimaryBody
			if json.Unmarshal(body, &b) != nil || b.Primary == nil || *b.Primary != named {
				t.Fatalf("vote %q not what the body %q names", named, body)
			}
		}
		if status == 503 && (named != "" || err != nil) {
			t.Fatalf("503 gave vote %q, error %v; want no vote and no error", named, err)
		}
		if status != 200 && status != 503 && err == nil {
			t.Fatalf("status %d accepted without error", status)
		}
	})
}
