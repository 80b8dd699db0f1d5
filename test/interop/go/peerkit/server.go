package peerkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// Server is the part of *ttrpc.Server (1.1 and 1.2) that Serve needs.
type Server interface {
	Serve(ctx context.Context, l net.Listener) error
	Close() error
}

// Serve listens on the unix socket, prints READY once listening and serves until
// SIGTERM/SIGINT or EOF on stdin (so the peer dies with the test process that
// spawned it, even when that process is killed).
func Serve(srv Server, socket string) error {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	defer os.Remove(socket)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	fmt.Println("READY")

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	stdinClosed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()

	select {
	case err := <-served:
		return err
	case <-stop:
	case <-stdinClosed:
	}
	// Close rather than Shutdown: a test ending must not wait for idle connections.
	return srv.Close()
}
