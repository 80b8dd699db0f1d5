package peerkit

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	interopv1 "ttrpces/interop/v1"
)

// Op does one unit of benchmark work (a call, a message) and returns the payload
// bytes it moved.
type Op func(ctx context.Context) (int, error)

// Bench runs e.Concurrency workers for e.Seconds. newWorker makes each worker's Op,
// so that a worker can keep a stream open across ops. Any error fails the run: a
// benchmark that hides failures measures nothing. Result: ops, bytes (payload bytes
// moved, one direction), seconds, p50_us and p99_us of the per-op latency.
func Bench(ctx context.Context, e *Env, newWorker func() Op) (Result, error) {
	if e.Concurrency < 1 {
		return nil, fmt.Errorf("--concurrency must be at least 1")
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		ops       int
		moved     int64
		firstErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(time.Duration(e.Seconds * float64(time.Second)))
	for w := 0; w < e.Concurrency; w++ {
		op := newWorker()
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			var bytes int64
			var err error
			for t := time.Now(); t.Before(end); {
				var n int
				n, err = op(ctx)
				if err != nil {
					break
				}
				now := time.Now()
				local = append(local, now.Sub(t))
				bytes += int64(n)
				t = now
			}
			mu.Lock()
			defer mu.Unlock()
			latencies = append(latencies, local...)
			ops += len(local)
			moved += bytes
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if firstErr != nil {
		return nil, fmt.Errorf("benchmark op failed: %w", firstErr)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	return Result{
		"ops":         ops,
		"bytes":       moved,
		"seconds":     elapsed,
		"p50_us":      percentile(latencies, 0.50),
		"p99_us":      percentile(latencies, 0.99),
		"size":        e.Size,
		"concurrency": e.Concurrency,
	}, nil
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return float64(sorted[i].Nanoseconds()) / 1e3
}

// BenchUnary: Echo calls with a payload of --size bytes.
func BenchUnary(ctx context.Context, e *Env) (Result, error) {
	req := &interopv1.EchoRequest{Payload: make([]byte, e.Size)}
	return Bench(ctx, e, func() Op {
		return func(ctx context.Context) (int, error) {
			resp, err := e.Echo(ctx, req)
			if err != nil {
				return 0, err
			}
			if len(resp.Payload) != e.Size {
				return 0, fmt.Errorf("echoed %d bytes, sent %d", len(resp.Payload), e.Size)
			}
			return e.Size, nil
		}
	})
}

// benchLatency: bench-unary at one call in flight, for latency percentiles.
func benchLatency(ctx context.Context, e *Env) (Result, error) {
	e.Concurrency = 1
	return BenchUnary(ctx, e)
}
