package client

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/pgquorum/pgquorum/api"
)

// FuzzReportAnswer: a failover report comes only from a 200 whose body
// decodes strictly, of the current protocol, and is what the body says.
func FuzzReportAnswer(f *testing.F) {
	f.Add(200, []byte(`{"protocol":1,"node":"n2","node_id":2,"location":"dc1","state":"Standby","db_up":true,"in_recovery":true,"timeline":1,"received_lsn":100}`))
	f.Add(200, []byte(`{"node":"n2","probe":{"node":"n1","ok":true},"action":null,"failover":{"state":"Following"}}`))
	f.Add(200, []byte(`{"received_lsn":1e30}`))
	f.Add(503, []byte(`{"node":"n2"}`))
	f.Add(200, []byte(`{"node":"n2"}{"node":"n3"}`))
	f.Add(200, []byte(`[]`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		r, err := DecodeReport(status, body)
		if (r == nil) == (err == nil) {
			t.Fatalf("DecodeReport(%d, %q) = %+v, %v: want exactly one of a report and an error", status, body, r, err)
		}
		if r == nil {
			return
		}
		var plain api.Report
		if status != 200 || api.DecodeStrict(bytes.NewReader(body), &plain) != nil || plain.Protocol != api.ReportProtocol || !reflect.DeepEqual(plain, *r) {
			t.Fatalf("report %+v from status %d and body %q", r, status, body)
		}
	})
}
