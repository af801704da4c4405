// Package hostilepeer serves answers that break HTTP's rules on purpose
// (megabytes of headers, endless bodies, bytes dripped one at a time), for
// the tests of the client's bounds and of the checker that relies on them.
package hostilepeer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Behaviour writes whatever bytes it likes as the answer; it returns when
// stop closes, at the latest.
type Behaviour func(w *bufio.Writer, stop <-chan struct{})

// Serve starts a raw TCP server that reads one HTTP request per connection
// and answers it with behave: it is not bound by net/http's own rules for
// servers. Connections are closed when the test ends, which ends every
// endless behaviour. It returns the server's host:port.
func Serve(t testing.TB, behave Behaviour) string {
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

// OKHeader starts a 200 answer of JSON.
const OKHeader = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"

// WellFormed answers body properly: the control case.
func WellFormed(body string) Behaviour {
	return func(w *bufio.Writer, _ <-chan struct{}) {
		fmt.Fprintf(w, "%sContent-Length: %d\r\n\r\n%s", OKHeader, len(body), body)
	}
}

// HugeHeader sends 1 MB in one header line before body.
func HugeHeader(body string) Behaviour {
	return func(w *bufio.Writer, _ <-chan struct{}) {
		fmt.Fprintf(w, "%sX-Pad: %s\r\nContent-Length: %d\r\n\r\n%s", OKHeader, strings.Repeat("a", 1<<20), len(body), body)
	}
}

// ManyHeaders sends 1 MB of small header lines before body.
func ManyHeaders(body string) Behaviour {
	return func(w *bufio.Writer, _ <-chan struct{}) {
		w.WriteString(OKHeader)
		for i := range 1 << 16 {
			fmt.Fprintf(w, "X-%d: abcdefgh\r\n", i)
		}
		fmt.Fprintf(w, "Content-Length: %d\r\n\r\n%s", len(body), body)
	}
}

// Endless writes body then blanks for ever (until the client hangs up or
// the test ends), without a Content-Length: the body ends at EOF.
func Endless(body string) Behaviour {
	return func(w *bufio.Writer, stop <-chan struct{}) {
		fmt.Fprintf(w, "%s\r\n%s", OKHeader, body)
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
}

// EndlessChunks does the same in chunked encoding.
func EndlessChunks(body string) Behaviour {
	return func(w *bufio.Writer, stop <-chan struct{}) {
		fmt.Fprintf(w, "%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", OKHeader, len(body), body)
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
}

// Drip sends a well-formed answer of body, from its from-th byte on one
// byte every 10 ms: never silent long enough for an idle timeout.
func Drip(body string, from int) Behaviour {
	return func(w *bufio.Writer, stop <-chan struct{}) {
		whole := fmt.Sprintf("%sContent-Length: %d\r\n\r\n%s", OKHeader, len(body), body)
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

// Case is a hostile answer wrapped around a valid vote, and what the
// client's Vote and State say of it.
type Case struct {
	Name     string
	Behave   Behaviour
	VoteErr  string // what Vote's error says
	StateErr string // what State's error says; "" when State returns the status
}

// Cases wrap vote, a valid vote answer under 4 KiB, in every broken
// exchange: none may count.
func Cases(vote string) []Case {
	bodyAt := len(OKHeader) + len(fmt.Sprintf("Content-Length: %d\r\n\r\n", len(vote)))
	return []Case{
		{Name: "1 MB header line", Behave: HugeHeader(vote), VoteErr: "exceeded", StateErr: "exceeded"},
		{Name: "1 MB of header lines", Behave: ManyHeaders(vote), VoteErr: "exceeded", StateErr: "exceeded"},
		{Name: "endless body", Behave: Endless(vote), VoteErr: "larger than 4096 bytes"},
		{Name: "endless chunked body", Behave: EndlessChunks(vote), VoteErr: "larger than 4096 bytes"},
		{Name: "header dripped a byte at a time", Behave: Drip(vote, 0), VoteErr: "deadline exceeded", StateErr: "deadline exceeded"},
		{Name: "body dripped a byte at a time", Behave: Drip(vote, bodyAt), VoteErr: "deadline exceeded", StateErr: "deadline exceeded"},
	}
}
