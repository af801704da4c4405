package consensus

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// hostilePeer is a raw TCP server that reads one HTTP request per connection
// and answers it with behave, which writes whatever bytes it likes: it is not
// bound by net/http's own rules for servers. Connections are closed when the
// test ends, which ends every endless behaviour.
func hostilePeer(t *testing.T, behave func(w *bufio.Writer, stop <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				w := bufio.NewWriter(c)
				behave(w, stop)
				_ = w.Flush()
			}()
		}
	}()
	return ln.Addr().String()
}

// peerVote is a granted vote of n2 for n1 that Decide counts in site(3): a
// hostile peer wraps it in a broken exchange, which must make it count for
// nothing.
var peerVote = fmt.Sprintf(`{"protocol":1,"voter":"n2","voter_id":2,"voter_type":"standby","system_identifier":%q,"timeline":1,"candidate":"n1","granted":true,"reason":"ok","lease_ms":%d}`,
	testSystemID, LeaseFor(testTTL).Milliseconds())

const okHeader = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"

// wellFormed answers peerVote properly: the control case.
func wellFormed(w *bufio.Writer, _ <-chan struct{}) {
	fmt.Fprintf(w, "%sContent-Length: %d\r\n\r\n%s", okHeader, len(peerVote), peerVote)
}

// hugeHeader sends 1 MB in one header line before a valid vote.
func hugeHeader(w *bufio.Writer, _ <-chan struct{}) {
	fmt.Fprintf(w, "%sX-Pad: %s\r\nContent-Length: %d\r\n\r\n%s", okHeader, strings.Repeat("a", 1<<20), len(peerVote), peerVote)
}

// manyHeaders sends 1 MB of small header lines before a valid vote.
func manyHeaders(w *bufio.Writer, _ <-chan struct{}) {
	w.WriteString(okHeader)
	for i := range 1 << 16 {
		fmt.Fprintf(w, "X-%d: abcdefgh\r\n", i)
	}
	fmt.Fprintf(w, "Content-Length: %d\r\n\r\n%s", len(peerVote), peerVote)
}

// endless writes a valid vote then blanks for ever (until the client hangs
// up or the test ends), without a Content-Length: the body ends at EOF.
func endless(w *bufio.Writer, stop <-chan struct{}) {
	fmt.Fprintf(w, "%s\r\n%s", okHeader, peerVote)
	pad := []byte(strings.Repeat(" ", 4096))
	for {
		select {
		case <-stop:
			return
		default:
		}
		if _, err := w.Write(pad); err != nil {
			return
		}
	}
}

// endlessChunks does the same in chunked encoding.
func endlessChunks(w *bufio.Writer, stop <-chan struct{}) {
	fmt.Fprintf(w, "%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", okHeader, len(peerVote), peerVote)
	for {
		select {
		case <-stop:
			return
		default:
		}
		if _, err := w.WriteString("400\r\n" + strings.Repeat(" ", 0x400) + "\r\n"); err != nil {
			return
		}
	}
}

// drip sends a well-formed answer one byte every 10 ms: never silent long
// enough for an idle timeout, and some 2 s in all.
func drip(from int) func(*bufio.Writer, <-chan struct{}) {
	return func(w *bufio.Writer, stop <-chan struct{}) {
		whole := fmt.Sprintf("%sContent-Length: %d\r\n\r\n%s", okHeader, len(peerVote), peerVote)
		w.WriteString(whole[:from])
		for i := from; i < len(whole); i++ {
			if w.WriteByte(whole[i]) != nil || w.Flush() != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

var dripHeader, dripBody = drip(0), drip(len(okHeader) + len("Content-Length: 999\r\n\r\n"))

var hostileCases = []struct {
	name     string
	behave   func(*bufio.Writer, <-chan struct{})
	voteErr  string // what Vote's error says
	stateErr string // what State's error says; "" when State returns the status
}{
	{name: "1 MB header line", behave: hugeHeader, voteErr: "exceeded", stateErr: "exceeded"},
	{name: "1 MB of header lines", behave: manyHeaders, voteErr: "exceeded", stateErr: "exceeded"},
	{name: "endless body", behave: endless, voteErr: "larger than 4096 bytes"},
	{name: "endless chunked body", behave: endlessChunks, voteErr: "larger than 4096 bytes"},
	{name: "header dripped a byte at a time", behave: dripHeader, voteErr: "deadline exceeded", stateErr: "deadline exceeded"},
	{name: "body dripped a byte at a time", behave: dripBody, voteErr: "deadline exceeded", stateErr: "deadline exceeded"},
}

// TestHTTPPeersHostile: whatever bytes a peer sends, the client returns
// within the caller's deadline (the bound asserted is 10× it, a correctness
// bound on a shared machine), and a vote comes only from a well-formed
// exchange.
func TestHTTPPeersHostile(t *testing.T) {
	peers := NewHTTPPeers(PeerAuth{})
	t.Run("control: well-formed answer is a vote", func(t *testing.T) {
		a, _, err := askVote(peers, hostilePeer(t, wellFormed))
		if err != nil || a == nil || !a.Granted {
			t.Fatalf("Vote = %+v, %v; want the granted vote", a, err)
		}
	})
	for _, tt := range hostileCases {
		t.Run(tt.name, func(t *testing.T) {
			addr := hostilePeer(t, tt.behave)
			a, took, err := askVote(peers, addr)
			if took >= 10*testPeerTimeout {
				t.Errorf("Vote took %s, want well under %s", took, 10*testPeerTimeout)
			}
			if a != nil || err == nil || !strings.Contains(err.Error(), tt.voteErr) {
				t.Errorf("Vote = %+v, %v; want no answer and an error containing %q", a, err, tt.voteErr)
			}

			status, body, err := askState(t, peers, addr)
			if tt.stateErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.stateErr) {
					t.Errorf("State = %d, %v; want an error containing %q", status, err, tt.stateErr)
				}
				return
			}
			// An oversized /state body still gives its status (a claim
			// to be primary, for the split-brain watch) but no body.
			if status != http.StatusOK || body != nil || err != nil {
				t.Errorf("State = %d, %+v, %v; want 200 with no body and no error", status, body, err)
			}
		})
	}
}

// TestHTTPPeersWithoutDeadline: a caller whose ctx has no deadline is still
// bounded by maxPeerExchange, and never waits past it for a dripping peer.
// The drip here lasts longer than the backstop.
func TestHTTPPeersWithoutDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 10 s backstop")
	}
	slow := func(w *bufio.Writer, stop <-chan struct{}) {
		w.WriteString(okHeader)
		for range 4 * int(maxPeerExchange/time.Second) {
			if w.WriteString("X: y\r\n"); w.Flush() != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	start := time.Now()
	a, err := NewHTTPPeers(PeerAuth{}).Vote(context.Background(), hostilePeer(t, slow), testRequest)
	took := time.Since(start)
	if a != nil || err == nil || took > maxPeerExchange+5*time.Second {
		t.Errorf("Vote without a deadline = %+v, %v after %s; want an error after about %s", a, err, took, maxPeerExchange)
	}
}

// TestCheckerWithHostilePeer: n1 runs as primary in a site of three; n3 is
// down, so n1 is Primary only if n2's answer counts. A hostile n2 wrapping a
// valid vote in a broken exchange leaves n1 Unknown, within its refresh
// bound; the control, the same vote well sent, makes it Primary.
func TestCheckerWithHostilePeer(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	closed.Close()
	cases := append([]struct {
		name     string
		behave   func(*bufio.Writer, <-chan struct{})
		voteErr  string
		stateErr string
	}{{name: "control: well-formed vote", behave: wellFormed}}, hostileCases...)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			nodes := site(3)
			clock := newFakeClock()
			checker := NewChecker(Options{
				Identity: Identity{Name: "n1"}, RefreshInterval: time.Hour, CacheTTL: testTTL, PeerTimeout: testPeerTimeout,
				Addresses: Addresses{Port: 5999, Overrides: map[string]string{"n2": hostilePeer(t, tt.behave), "n3": down}},
				Now:       clock.Now, Ballot: openBallot(clock, testTTL),
			}, &fakeProber{facts: primaryFacts(nodes)}, NewHTTPPeers(PeerAuth{}))
			start := time.Now()
			s := checker.Snapshot(context.Background())
			if took := time.Since(start); took >= 10*testPeerTimeout {
				t.Errorf("refresh took %s, want well under %s", took, 10*testPeerTimeout)
			}
			want, votes := api.StateUnknown, 1
			if tt.voteErr == "" {
				want, votes = api.StatePrimary, 2
			}
			if s.Verdict.State != want || s.Verdict.Votes != votes {
				got, _ := json.Marshal(s.Votes[2].Answer)
				t.Errorf("verdict %s with %d votes (n2: %s, %v); want %s with %d", s.Verdict.State, s.Verdict.Votes, got, s.Votes[2].Err, want, votes)
			}
		})
	}
}
