// A service that bills by time, in Go with only the standard library
// (docs/integration.md).
//
//	service MAX_SECONDS USED_SECONDS [FEATURE]
//
// Checks the license for FEATURE (default "standard") before it works,
// reserves MAX_SECONDS usage seconds, "works", and commits what the work used
// (USED_SECONDS stands for what a real service would measure). The socket
// comes from TPMLIC_SOCKET, else /run/tpmlic/tpmlicd.sock.
//
//	go build -o service service.go
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// client talks HTTP/1.1 to tpmlicd over its UNIX socket; the Transport keeps
// connections alive and dials again when the agent has closed one.
func client(socket string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}
}

// call sends one request; the decoded answer, or an error with the agent's
// message.
func call(c *http.Client, path string, body, answer any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := c.Post("http://localhost"+path, "application/json", bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("cannot reach tpmlicd: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("refused: %s", e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(answer)
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: service MAX_SECONDS USED_SECONDS [FEATURE]")
		os.Exit(2)
	}
	maxSecs, _ := strconv.Atoi(os.Args[1])
	used, _ := strconv.Atoi(os.Args[2])
	feature := "standard"
	if len(os.Args) > 3 {
		feature = os.Args[3]
	}
	socket := os.Getenv("TPMLIC_SOCKET")
	if socket == "" {
		socket = "/run/tpmlic/tpmlicd.sock"
	}
	c := client(socket)

	// 1. May this work be done at all?
	var allowed struct {
		Allowed bool `json:"allowed"`
	}
	if err := call(c, "/v1/check", map[string]any{"feature": feature}, &allowed); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("allowed: feature %s\n", feature)

	// 2. Take the seconds the work may need. The agent may grant fewer.
	var lease struct {
		Lease   string `json:"lease"`
		Seconds int    `json:"seconds"`
	}
	if err := call(c, "/v1/usage/reserve", map[string]any{"seconds": maxSecs, "feature": feature}, &lease); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("reserved %d s (lease %s)\n", lease.Seconds, lease.Lease)

	// 3. The work itself, within what was granted.
	if used > lease.Seconds {
		used = lease.Seconds
	}

	// 4. Charge what was used; the rest goes back.
	var done struct {
		Charged  int `json:"charged"`
		Returned int `json:"returned"`
	}
	if err := call(c, "/v1/usage/commit", map[string]any{"lease": lease.Lease, "used": used}, &done); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("charged %d s, returned %d s\n", done.Charged, done.Returned)
}
