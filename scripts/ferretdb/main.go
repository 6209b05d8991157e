// Command ferretdb runs an embedded FerretDB v1 (SQLite backend) as a
// MongoDB-compatible server for local development and tests.
//
// Usage:
//
//	ferretdb -listen-addr 127.0.0.1:27017 -state-dir ./.cache/ferretdb-data
//
// Once the server accepts connections, exactly one line is printed to stdout:
//
//	ready mongodb://127.0.0.1:27017/
//
// Logs (error level by default, see -log-level) go to stderr. SIGINT/SIGTERM shut it down cleanly.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (port 0 picks a free port)")
	stateDir := flag.String("state-dir", "ferretdb-state", "directory for SQLite database files (created if missing)")
	logLevel := flag.String("log-level", "error", "log level: debug, info, warn or error (warn logs every error response in full)")
	flag.Parse()

	if err := run(*listenAddr, *stateDir, *logLevel); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}
}

func run(listenAddr, stateDir, logLevel string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("invalid -log-level %q: %w", logLevel, err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	dir, err := filepath.Abs(stateDir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}

	if err = os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}

	// The SQLite handler wants a "file:" URI pointing to a directory (trailing slash required).
	sqliteURL := (&url.URL{Scheme: "file", Path: strings.TrimSuffix(filepath.ToSlash(dir), "/") + "/"}).String()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			TCP: listenAddr,
		},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	done := make(chan error, 1)

	go func() {
		done <- f.Run(ctx)
	}()

	// The TCP listener is bound inside ferretdb.New; Run starts the accept loop.
	// Dial once to be sure the server really accepts before announcing readiness.
	uri := f.MongoDBURI()

	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("parse %q: %w", uri, err)
	}

	if err = waitDial(ctx, u.Host); err != nil {
		stop()
		<-done

		return err
	}

	fmt.Fprintf(os.Stdout, "ready %s\n", uri)

	err = <-done
	if err != nil {
		return err
	}

	return nil
}

// waitDial waits until a TCP connection to addr succeeds.
func waitDial(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)

	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}

		if time.Now().After(deadline) {
			return fmt.Errorf("server did not accept connections on %s: %w", addr, err)
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
