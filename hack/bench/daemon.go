package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is a `charter daemon run` process the harness started.
type daemon struct {
	cmd     *exec.Cmd
	pid     int
	addr    string // its --listen address
	logPath string
	started time.Time
	done    chan struct{}
	waitErr error
}

// daemonOptions are the settings of one daemon run.
type daemonOptions struct {
	state, recordsNS string
	resync           time.Duration
	log              string // file name under the logs folder
	pprof            bool
}

// startDaemon starts a daemon on a folder state and waits until it serves
// /readyz (its sources fetched).
func (b *bench) startDaemon(ctx context.Context, o daemonOptions) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d := &daemon{addr: "127.0.0.1:" + strconv.Itoa(port), logPath: filepath.Join(b.logs, o.log), done: make(chan struct{})}
	args := []string{
		"--kubeconfig", b.env.Kubeconfig, "--kube-qps", fmt.Sprint(b.cfg.qps), "--kube-burst", fmt.Sprint(b.cfg.burst),
		"--state", o.state, "--records-namespace", o.recordsNS,
		"daemon", "run", "--workers", fmt.Sprint(b.cfg.workers),
		"--resync-interval", o.resync.String(), "--interval", "1h",
		"--cache-dir", filepath.Join(b.work, "daemon-cache"),
		"--listen", d.addr, "--log-json",
	}
	if o.pprof && b.pprof {
		args = append(args, "--pprof")
	}
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, fmt.Errorf("daemon log: %w", err)
	}
	d.cmd = exec.Command(b.charter, args...)
	d.cmd.Env = append(os.Environ(), b.home("charter")...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start charter daemon: %w", err)
	}
	d.pid, d.started = d.cmd.Process.Pid, time.Now()
	go func() {
		d.waitErr = d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	if err := d.waitReady(ctx, 2*time.Minute); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("charter daemon exited: %v; last log line: %s", d.waitErr, d.lastLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get("http://" + d.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("charter daemon not ready after %s; last log line: %s", timeout, d.lastLog())
}

// status reads the daemon's RSS, peak RSS and CPU time.
func (d *daemon) status() procStatus {
	st, _ := readProcStatus(d.pid)
	return st
}

// metrics scrapes the daemon's /metrics (empty when it serves none).
func (d *daemon) metrics() string {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + d.addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// profile takes a CPU profile of the daemon over secs seconds into path.
func (d *daemon) profile(ctx context.Context, secs int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", d.addr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("profile daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile daemon: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		return fmt.Errorf("profile daemon: %w", err)
	}
	return nil
}

// stop sends SIGTERM and waits (SIGKILL after 30 s).
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *daemon) lastLog() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return "(no log)"
	}
	return truncate(lastLine(b), 300)
}

// logOffset is the current size of the daemon's log, to read what it
// logs from now on with logSince.
func (d *daemon) logOffset() int64 {
	fi, err := os.Stat(d.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logEntry is one JSON log line of the daemon (--log-json).
type logEntry struct {
	Msg     string `json:"msg"`
	Level   string `json:"level"`
	Release string `json:"release"`
	Action  string `json:"action"`
	Error   string `json:"error"`
}

// logSince parses the daemon's JSON log lines written after offset.
func (d *daemon) logSince(offset int64) []logEntry {
	f, err := os.Open(d.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	var out []logEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e logEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg != "" {
			out = append(out, e)
		}
	}
	return out
}

// sumMetric sums every sample of a counter or gauge in a Prometheus text
// exposition whose labels contain all of match (e.g. `action="unchanged"`).
// ok is false when the metric is absent.
func sumMetric(text, name string, match ...string) (sum float64, ok bool) {
	for line := range strings.SplitSeq(text, "\n") {
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || rest[0] != '{' && rest[0] != ' ' {
			continue
		}
		labels := ""
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		all := true
		for _, m := range match {
			if !strings.Contains(labels, m) {
				all = false
				break
			}
		}
		f := strings.Fields(rest)
		if !all || len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum += v
		ok = true
	}
	return sum, ok
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
