// Command benchref is the reference of the benchmark harness: a bare Go
// net/http server answering a fixed /state body of the same size as
// pgquorum's, so that "pgquorum vs bare Go" is measured in the same run, on
// the same machine, with the same load generator.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"
)

const body = `{"State":"Primary","node":"node1","location":"dc1","votes":3,"needed":2,"checked_at":"2026-11-21T12:00:00.123Z","voters":["node1","node2","node3"],"reason":"3 of 3 nodes in location \"dc1\" name it primary"}` + "\n"

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	flag.Parse()
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 2 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
	})}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
