package peerkit

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/status"
)

// Result is the one JSON line a client scenario prints.
type Result map[string]any

// Env is what a scenario gets: a client connected to --socket, and the options.
type Env struct {
	Socket      string
	Client      *ttrpc.Client
	Size        int
	Concurrency int
	Seconds     float64
	Code        int // for status-CODE
}

// Scenario runs against the server and reports what it observed. The error is for
// harness failures only; RPC errors belong in the Result (see ErrorResult).
type Scenario func(ctx context.Context, e *Env) (Result, error)

var statusScenario = regexp.MustCompile(`^status-(\d+)$`)

// Main runs "server --socket PATH" with serve, or
// "client --socket PATH --scenario NAME [--size N --concurrency C --seconds S]".
func Main(serve func(socket string) error, scenarios map[string]Scenario) {
	if len(os.Args) < 2 {
		usage(scenarios)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	socket := fs.String("socket", "", "unix socket path")
	switch os.Args[1] {
	case "server":
		fs.Parse(os.Args[2:])
		if *socket == "" {
			usage(scenarios)
		}
		exitOn(serve(*socket))
	case "client":
		env := &Env{}
		name := fs.String("scenario", "", "scenario name")
		fs.IntVar(&env.Size, "size", 16, "payload bytes (bench)")
		fs.IntVar(&env.Concurrency, "concurrency", 1, "calls or streams in flight (bench)")
		fs.Float64Var(&env.Seconds, "seconds", 5, "duration (bench)")
		fs.Parse(os.Args[2:])
		if *socket == "" || *name == "" {
			usage(scenarios)
		}
		env.Socket = *socket
		run, ok := scenarios[*name]
		if m := statusScenario.FindStringSubmatch(*name); !ok && m != nil {
			env.Code, _ = strconv.Atoi(m[1])
			run, ok = scenarios["status-CODE"]
		}
		if !ok {
			exitOn(fmt.Errorf("unknown scenario %q", *name))
		}
		client, err := Dial(env.Socket)
		exitOn(err)
		env.Client = client
		res, err := run(context.Background(), env)
		client.Close()
		exitOn(err)
		out, err := json.Marshal(res)
		exitOn(err)
		fmt.Println(string(out))
	default:
		usage(scenarios)
	}
}

// Dial connects a ttrpc client to a unix socket.
func Dial(socket string) (*ttrpc.Client, error) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return nil, err
	}
	return ttrpc.NewClient(conn), nil
}

// ErrorResult describes an RPC error. kind tells where it came from: "status" (a
// status the server sent), "context" (the client's own deadline or cancellation),
// "closed" (the connection is gone) or "other". code is the status code, for
// context errors the one gRPC would use, else UNKNOWN (2).
func ErrorResult(err error) Result {
	r := Result{"ok": false, "error": err.Error(), "kind": "other"}
	if st, ok := status.FromError(err); ok {
		r["kind"] = "status"
		r["code"] = int(st.Code())
		r["message"] = st.Message()
		details, types := []string{}, []string{}
		for _, a := range st.Proto().GetDetails() {
			types = append(types, a.GetTypeUrl())
		}
		for _, d := range st.Details() {
			if s, ok := d.(interface{ GetValue() string }); ok {
				details = append(details, s.GetValue())
			}
		}
		r["details"], r["detail_types"] = details, types
		return r
	}
	r["code"], r["message"] = int(status.Code(err)), err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		r["kind"] = "context"
		r["code"] = int(status.FromContextError(err).Code())
	case errors.Is(err, ttrpc.ErrClosed):
		r["kind"] = "closed"
	}
	return r
}

// Merge copies extra fields into r.
func (r Result) Merge(extra Result) Result {
	for k, v := range extra {
		r[k] = v
	}
	return r
}

// Since is the time elapsed since t in milliseconds, for results.
func Since(t time.Time) int64 { return time.Since(t).Milliseconds() }

func usage(scenarios map[string]Scenario) {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: %s server --socket PATH\n       %s client --socket PATH --scenario NAME [--size N] [--concurrency C] [--seconds S]\nscenarios: %v\n",
		os.Args[0], os.Args[0], names)
	os.Exit(2)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
