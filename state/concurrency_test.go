package state

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The tests below re-run the test binary as helper processes, so that two
// processes race on the same state directory as well as goroutines.
const helperEnv = "CHARTER_STATE_TEST_HELPER"

// TestHelperProcess is not a test: it is the body of a helper process.
// Usage: CHARTER_STATE_TEST_HELPER=<mode>,<dir>,<id>,<goroutines>,<rounds>.
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("only runs as a helper process")
	}
	parts := strings.Split(spec, ",")
	mode, root, id := parts[0], parts[1], parts[2]
	workers, _ := strconv.Atoi(parts[3])
	rounds, _ := strconv.Atoi(parts[4])
	d, err := Open(root)
	if err != nil {
		fmt.Println("err", err)
		os.Exit(1)
	}
	waitForStart(root)
	out := make(chan string, workers*rounds)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprintf("%s-%d", id, w)
			switch mode {
			case "create":
				out <- createResult(d, worker)
			case "increment":
				for i := 0; i < rounds; i++ {
					if err := increment(d); err != nil {
						out <- "err " + err.Error()
					}
				}
			}
		}()
	}
	wg.Wait()
	close(out)
	for line := range out {
		fmt.Println(line)
	}
	os.Exit(0)
}

func waitForStart(root string) {
	for {
		if _, err := os.Stat(filepath.Join(root, "start")); err == nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// createResult tries to create release "race" as worker and says how it went.
func createResult(d *Dir, worker string) string {
	err := d.Create(context.Background(), &Release{Name: "race", Chart: "charts/c-1.0.0.tgz", Values: map[string]any{"writer": worker, "padding": strings.Repeat("x", 64<<10)}})
	switch {
	case err == nil:
		return "won " + worker
	case errors.Is(err, ErrExists):
		return "exists " + worker
	}
	return "err " + err.Error()
}

func increment(d *Dir) error {
	_, err := d.Update(context.Background(), "counter", func(r *Release) error {
		n, _ := r.Values["count"].(float64)
		r.Values["count"] = n + 1
		return nil
	})
	return err
}

// startHelpers starts n helper processes in mode and returns a function
// that waits for them and returns their output lines.
func startHelpers(t *testing.T, n int, mode, root string, workers, rounds int) func() []string {
	t.Helper()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < n; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,p%d,%d,%d", helperEnv, mode, root, i, workers, rounds))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	return func() []string {
		var lines []string
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
			}
			sc := bufio.NewScanner(outs[i])
			for sc.Scan() {
				if l := sc.Text(); strings.HasPrefix(l, "won ") || strings.HasPrefix(l, "exists ") || strings.HasPrefix(l, "err ") {
					lines = append(lines, l)
				}
			}
		}
		return lines
	}
}

func TestCreateRaceHasExactlyOneWinner(t *testing.T) {
	if testing.Short() {
		t.Skip("starts helper processes")
	}
	d := newTestDir(t)
	const procs, perProc, local = 2, 8, 8
	wait := startHelpers(t, procs, "create", d.Root(), perProc, 1)
	results := make(chan string, local)
	var wg sync.WaitGroup
	for i := 0; i < local; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			waitForStart(d.Root())
			results <- createResult(d, fmt.Sprintf("local-%d", i))
		}()
	}
	writeFileIn(t, d, "start", nil)
	wg.Wait()
	close(results)
	lines := wait()
	for l := range results {
		lines = append(lines, l)
	}

	var winners []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "won "):
			winners = append(winners, strings.TrimPrefix(l, "won "))
		case strings.HasPrefix(l, "exists "):
		default:
			t.Errorf("unexpected result: %s", l)
		}
	}
	if len(lines) != procs*perProc+local {
		t.Fatalf("got %d results, want %d: %v", len(lines), procs*perProc+local, lines)
	}
	if len(winners) != 1 {
		t.Fatalf("winners = %v, want exactly one", winners)
	}
	got, err := d.Get(context.Background(), "race")
	if err != nil {
		t.Fatalf("the winner's file does not read back: %v", err)
	}
	if got.Values["writer"] != winners[0] {
		t.Errorf("file was written by %v, but %s won", got.Values["writer"], winners[0])
	}
	assertNoTempFiles(t, d)
}

func TestExclusiveWriteHasOneWinnerWithoutTheLock(t *testing.T) {
	// The hard link alone makes Create exclusive, even against writers that
	// do not take the lock.
	dir := t.TempDir()
	path := filepath.Join(dir, "x.yaml")
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = writeFile(context.Background(), path, []byte(fmt.Sprintf("writer %d\n", i)), 0o644, true, nil)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, errFileExists):
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("nobody won")
	}
	got, _ := os.ReadFile(path)
	if want := fmt.Sprintf("writer %d\n", winner); string(got) != want {
		t.Errorf("file holds %q, want %q", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("folder holds %d files, want 1 (temporary files left behind)", len(entries))
	}
}

func TestConcurrentUpdatesSerialise(t *testing.T) {
	if testing.Short() {
		t.Skip("starts helper processes")
	}
	ctx := context.Background()
	d := newTestDir(t)
	if err := d.Create(ctx, &Release{Name: "counter", Chart: "c", Values: map[string]any{"count": 0}}); err != nil {
		t.Fatal(err)
	}
	const procs, perProc, local, rounds = 2, 4, 4, 10
	wait := startHelpers(t, procs, "increment", d.Root(), perProc, rounds)
	var wg sync.WaitGroup
	for i := 0; i < local; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			waitForStart(d.Root())
			for j := 0; j < rounds; j++ {
				if err := increment(d); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	writeFileIn(t, d, "start", nil)
	wg.Wait()
	for _, l := range wait() {
		t.Errorf("helper: %s", l)
	}
	got, err := d.Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if want := float64((procs*perProc + local) * rounds); got.Values["count"] != want {
		t.Errorf("count = %v, want %v: concurrent updates were lost", got.Values["count"], want)
	}
	assertNoTempFiles(t, d)
}

// failingWriter writes the first n bytes, then fails, like a full disk or a
// crash half way through a write.
type failingWriter struct {
	w io.Writer
	n int
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return f.w.Write(p)
	}
	k, _ := f.w.Write(p[:f.n])
	f.n = 0
	return k, errors.New("injected write failure")
}

func failAfter(n int) func(io.Writer) io.Writer {
	return func(w io.Writer) io.Writer { return &failingWriter{w: w, n: n} }
}

func TestInterruptedWritesLeaveNoPartialFile(t *testing.T) {
	ctx := context.Background()
	orig := readTestdata(t, "update/hand.yaml")
	tgz := gzipBytes(t, "chart")

	t.Run("update failing half way keeps the old file", func(t *testing.T) {
		d := newTestDir(t)
		writeRelease(t, d, "taco-tuesday", orig)
		d.wrapWrite = failAfter(20)
		_, err := d.Update(ctx, "taco-tuesday", func(r *Release) error { r.Values["replicaCount"] = 9; return nil })
		checkErr(t, err, "injected write failure")
		if diff := cmp.Diff(string(orig), string(readFile(t, d, "releases/taco-tuesday.yaml"))); diff != "" {
			t.Errorf("declaration changed (-want +got):\n%s", diff)
		}
		assertNoTempFiles(t, d)
	})
	t.Run("create failing half way leaves no file", func(t *testing.T) {
		d := newTestDir(t)
		d.wrapWrite = failAfter(20)
		err := d.Create(ctx, &Release{Name: "taco", Chart: "c", Values: map[string]any{"a": strings.Repeat("b", 100)}})
		checkErr(t, err, "injected write failure")
		if _, err := d.Get(ctx, "taco"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get after failed Create: %v, want ErrNotFound", err)
		}
		assertNoTempFiles(t, d)
		// The name is still free.
		d.wrapWrite = nil
		if err := d.Create(ctx, &Release{Name: "taco", Chart: "c"}); err != nil {
			t.Errorf("Create after failed Create: %v", err)
		}
	})
	t.Run("chart store failing half way keeps the old archive", func(t *testing.T) {
		d := newTestDir(t)
		if _, err := d.PutChart(ctx, "c", "1.0.0", tgz); err != nil {
			t.Fatal(err)
		}
		d.wrapWrite = failAfter(5)
		_, err := d.PutChart(ctx, "c", "1.0.0", gzipBytes(t, "another chart"))
		checkErr(t, err, "injected write failure")
		if diff := cmp.Diff(tgz, readFile(t, d, "charts/c-1.0.0.tgz")); diff != "" {
			t.Errorf("archive changed (-want +got):\n%s", diff)
		}
		assertNoTempFiles(t, d)
	})
	t.Run("update cancelled before publishing keeps the old file", func(t *testing.T) {
		d := newTestDir(t)
		writeRelease(t, d, "taco-tuesday", orig)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		_, err := d.Update(ctx, "taco-tuesday", func(r *Release) error {
			r.Values["replicaCount"] = 9
			cancel() // Ctrl-C while the edit is under way
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Update error = %v, want context.Canceled", err)
		}
		if diff := cmp.Diff(string(orig), string(readFile(t, d, "releases/taco-tuesday.yaml"))); diff != "" {
			t.Errorf("declaration changed (-want +got):\n%s", diff)
		}
		assertNoTempFiles(t, d)
	})
	t.Run("fn error writes nothing", func(t *testing.T) {
		d := newTestDir(t)
		writeRelease(t, d, "taco-tuesday", orig)
		_, err := d.Update(ctx, "taco-tuesday", func(r *Release) error {
			r.Values["replicaCount"] = 9
			return errors.New("user said no")
		})
		checkErr(t, err, `update release "taco-tuesday": user said no`)
		if diff := cmp.Diff(string(orig), string(readFile(t, d, "releases/taco-tuesday.yaml"))); diff != "" {
			t.Errorf("declaration changed (-want +got):\n%s", diff)
		}
	})
	t.Run("invalid result or rename writes nothing", func(t *testing.T) {
		d := newTestDir(t)
		writeRelease(t, d, "taco-tuesday", orig)
		_, err := d.Update(ctx, "taco-tuesday", func(r *Release) error { r.Version = "not a constraint!"; return nil })
		checkErr(t, err, `update release "taco-tuesday": version "not a constraint!" is not a valid semver constraint`)
		_, err = d.Update(ctx, "taco-tuesday", func(r *Release) error { r.Name = "other"; return nil })
		checkErr(t, err, `renaming a release (to "other") is not supported`)
		if diff := cmp.Diff(string(orig), string(readFile(t, d, "releases/taco-tuesday.yaml"))); diff != "" {
			t.Errorf("declaration changed (-want +got):\n%s", diff)
		}
	})
}

func assertNoTempFiles(t *testing.T, d *Dir) {
	t.Helper()
	err := filepath.WalkDir(d.Root(), func(path string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(de.Name(), tmpPrefix) {
			t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
