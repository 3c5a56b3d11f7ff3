package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/webhook"
)

// sourceFlags are the non-secret source settings; secrets come from the
// environment only, so they never show in `ps` or shell history.
type sourceFlags struct {
	endpoint              string
	region                string
	insecureIgnoreHostKey bool
}

func (s *sourceFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&s.endpoint, "s3-endpoint", "", "S3 endpoint for s3:// locations (e.g. http://127.0.0.1:9000 for MinIO; default AWS)")
	f.StringVar(&s.region, "s3-region", "", "S3 region for s3:// locations")
	f.BoolVar(&s.insecureIgnoreHostKey, "insecure-ignore-host-key", false, "git over ssh: do not check the server's host key (unsafe)")
}

// sourceOptions builds source options: credentials from the environment.
//
//	CHARTER_GIT_USERNAME, CHARTER_GIT_PASSWORD, CHARTER_GIT_TOKEN   git over https
//	CHARTER_SSH_KEY, CHARTER_SSH_KEY_PASSPHRASE, CHARTER_SSH_KNOWN_HOSTS   git over ssh
//	AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (or CHARTER_S3_ACCESS_KEY, CHARTER_S3_SECRET_KEY)   buckets
func (s *sourceFlags) sourceOptions(cacheDir string) source.Options {
	env := func(names ...string) string {
		for _, n := range names {
			if v := os.Getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	return source.Options{
		CacheDir: cacheDir,
		Credentials: source.Credentials{
			Username:              env("CHARTER_GIT_USERNAME"),
			Password:              env("CHARTER_GIT_PASSWORD"),
			Token:                 env("CHARTER_GIT_TOKEN"),
			SSHKeyFile:            env("CHARTER_SSH_KEY"),
			SSHKeyPassphrase:      env("CHARTER_SSH_KEY_PASSPHRASE"),
			KnownHostsFile:        env("CHARTER_SSH_KNOWN_HOSTS"),
			InsecureIgnoreHostKey: s.insecureIgnoreHostKey,
			AccessKey:             env("CHARTER_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
			SecretKey:             env("CHARTER_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
		},
		Endpoint: s.endpoint,
		Region:   s.region,
	}
}

// withCredential fills a source's credentials from a cluster credential
// (charter credential add): for git over http(s) the token and secret are
// user and password, for buckets the access key and secret key.
func (g *globalOptions) withCredential(ctx context.Context, opts source.Options, loc, name string) (source.Options, error) {
	if name == "" {
		return opts, nil
	}
	st, err := g.credentials()
	if err != nil {
		return opts, err
	}
	c, err := st.Get(ctx, name)
	if err != nil {
		return opts, fmt.Errorf("credential for %s: %w", source.Redact(loc), err)
	}
	switch source.KindOf(loc, isGitRepo) {
	case source.KindBucket:
		opts.AccessKey, opts.SecretKey = c.Token, c.Secret()
	case source.KindGit:
		opts.Username, opts.Password, opts.Token = c.Token, c.Secret(), ""
	default:
		return opts, fmt.Errorf("%s is a folder: it takes no credential", source.Redact(loc))
	}
	return opts, nil
}

// defaultCacheDir is where sources and stores keep their working copies.
func defaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find cache dir: %w", err)
	}
	return filepath.Join(dir, "charter", "sources"), nil
}

// daemonConfig is the --config file.
type daemonConfig struct {
	APIVersion string         `json:"apiVersion,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Interval   string         `json:"interval,omitempty"`
	Listen     string         `json:"listen,omitempty"`
	Sources    []configSource `json:"sources"`
}

type configSource struct {
	Name              string `json:"name,omitempty"`
	URL               string `json:"url"`
	Credential        string `json:"credential,omitempty"` // a cluster credential by name
	Interval          string `json:"interval,omitempty"`
	AllowEmpty        bool   `json:"allowEmpty,omitempty"`
	WebhookSecretFile string `json:"webhookSecretFile,omitempty"`
}

// watchedSource is one source as configured.
type watchedSource struct {
	name       string
	location   string
	credential string
	interval   time.Duration
	allowEmpty bool
	secret     string
}

var nameRE = regexp.MustCompile(`[^a-z0-9-]+`)

// sourceName derives a webhook name from a location: its last path
// element, lowercased (repo.git → repo).
func sourceName(loc string) string {
	l := source.Redact(loc)
	l, _, _ = strings.Cut(l, "?")
	if i := strings.Index(l, "://"); i >= 0 {
		l = l[i+3:]
	}
	if i := strings.Index(l, "//"); i >= 0 { // a sub-path: name the repository
		l = l[:i]
	}
	l = strings.TrimSuffix(filepath.Base(strings.TrimSuffix(l, "/")), ".git")
	n := strings.Trim(nameRE.ReplaceAllString(strings.ToLower(l), "-"), "-")
	if n == "" {
		return "state"
	}
	return n
}

func readSecret(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read webhook secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("webhook secret file %s is empty", file)
	}
	return s, nil
}

// watchedSources merges --config, --source and the --state default.
func (g *globalOptions) watchedSources(o *daemonRunOptions) ([]watchedSource, string, error) {
	var out []watchedSource
	listen := o.listen
	if o.config != "" {
		b, err := os.ReadFile(o.config)
		if err != nil {
			return nil, "", fmt.Errorf("read daemon config: %w", err)
		}
		var cfg daemonConfig
		if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
			return nil, "", fmt.Errorf("daemon config %s: %w", o.config, err)
		}
		if listen == "" {
			listen = cfg.Listen
		}
		for i, cs := range cfg.Sources {
			if cs.URL == "" {
				return nil, "", fmt.Errorf("daemon config %s: source %d has no url", o.config, i+1)
			}
			w := watchedSource{name: cs.Name, location: cs.URL, credential: cs.Credential, allowEmpty: cs.AllowEmpty}
			if cs.Interval != "" {
				d, err := time.ParseDuration(cs.Interval)
				if err != nil {
					return nil, "", fmt.Errorf("daemon config %s: source %s: interval: %w", o.config, source.Redact(cs.URL), err)
				}
				w.interval = d
			}
			if w.secret, err = readSecret(cs.WebhookSecretFile); err != nil {
				return nil, "", err
			}
			out = append(out, w)
		}
	}
	flagSecret, err := readSecret(o.secretFile)
	if err != nil {
		return nil, "", err
	}
	for _, s := range o.sources {
		w := watchedSource{location: s, allowEmpty: o.allowEmpty, secret: flagSecret}
		if name, loc, ok := strings.Cut(s, "="); ok && !strings.Contains(name, "/") && !strings.Contains(name, ":") {
			w.name, w.location = name, loc
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		loc, err := g.stateLocation()
		if err != nil {
			return nil, "", err
		}
		out = append(out, watchedSource{location: loc, credential: g.stateCredential, allowEmpty: o.allowEmpty, secret: flagSecret})
	}
	seen := map[string]bool{}
	for i := range out {
		if source.KindOf(out[i].location, isGitRepo) == source.KindDir {
			abs, err := filepath.Abs(localPath(out[i].location))
			if err != nil {
				return nil, "", err
			}
			out[i].location = abs
		}
		if out[i].name == "" {
			out[i].name = sourceName(out[i].location)
		}
		for seen[out[i].name] {
			out[i].name += "-2"
		}
		seen[out[i].name] = true
	}
	return out, listen, nil
}

// daemonOpsFlags operate the daemon: profiling, leader election among
// replicas and sharding of releases across daemons.
type daemonOpsFlags struct {
	pprof         bool
	leaderElect   bool
	leaseDuration time.Duration
	renewDeadline time.Duration
	retryPeriod   time.Duration
	identity      string
	shard         string
}

func (o *daemonOpsFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.pprof, "pprof", false, "serve Go profiles at /debug/pprof/ on --listen (keep --listen private when on)")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "only the replica holding the Lease charter-daemon-leader in the records namespace reconciles; others stand by")
	f.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long standby replicas wait after the leader's last renewal before taking over")
	f.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader tries to renew before it stops reconciling and stands by again")
	f.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second, "interval between leader election tries")
	f.StringVar(&o.identity, "leader-elect-identity", "", "this replica's identity in leader election, unique per replica (default: hostname-pid); a restart with the same identity leads again at once")
	f.StringVar(&o.shard, "shard", "", "reconcile only the releases of shard INDEX/COUNT (by a stable hash of the name); run one daemon per shard")
}

// check rejects inconsistent flags before anything starts.
func (o *daemonOpsFlags) check(listen string) (reconcile.Shard, error) {
	var shard reconcile.Shard
	if o.shard != "" {
		var err error
		if shard, err = reconcile.ParseShard(o.shard); err != nil {
			return shard, fmt.Errorf("--shard: %w", err)
		}
	}
	if o.pprof && listen == "" {
		return shard, errors.New("--pprof needs --listen (the address profiles are served on)")
	}
	if o.leaderElect {
		switch {
		case o.retryPeriod <= 0:
			return shard, fmt.Errorf("--leader-elect-retry-period %s: must be positive", o.retryPeriod)
		case o.renewDeadline <= time.Duration(1.2*float64(o.retryPeriod)):
			return shard, fmt.Errorf("--leader-elect-renew-deadline %s must be longer than 1.2 × --leader-elect-retry-period %s", o.renewDeadline, o.retryPeriod)
		case o.leaseDuration <= o.renewDeadline:
			return shard, fmt.Errorf("--leader-elect-lease-duration %s must be longer than --leader-elect-renew-deadline %s", o.leaseDuration, o.renewDeadline)
		}
	}
	return shard, nil
}

func runDaemon(ctx context.Context, g *globalOptions, o *daemonRunOptions) error {
	watched, listen, err := g.watchedSources(o)
	if err != nil {
		return err
	}
	shard, err := o.ops.check(listen)
	if err != nil {
		return err
	}
	cache := o.cacheDir
	if cache == "" {
		if cache, err = defaultCacheDir(); err != nil {
			return err
		}
	}
	opts := g.src.sourceOptions(cache)
	opts.Debounce = o.debounce
	c, err := g.clusterClient()
	if err != nil {
		return err
	}
	recs, err := g.records()
	if err != nil {
		return err
	}
	log := g.logger(o.jsonLogs)
	klog.SetSlogLogger(log) // client-go's leader election logs through klog
	var srcs []reconcile.Watched
	var locations []string
	byName := map[string]watchedSource{}
	for _, w := range watched {
		sopts, err := g.withCredential(ctx, opts, w.location, w.credential)
		if err != nil {
			return err
		}
		s, err := openSource(w.location, sopts)
		if err != nil {
			return err
		}
		if cl, ok := s.(source.Closer); ok {
			defer cl.Close()
		}
		srcs = append(srcs, reconcile.Watched{Source: s, Interval: w.interval, AllowEmpty: w.allowEmpty})
		locations = append(locations, s.String())
		w.location = s.String()
		byName[w.name] = w
	}
	set := reconcile.NewSourceSet(locations)
	charts, err := g.declared()
	if err != nil {
		return err
	}
	r := &reconcile.Reconciler{State: set, Records: recs, Cluster: c, Charts: charts, Timeout: o.timeout, Log: log}
	if err := pingWithRetry(ctx, c); err != nil {
		return err
	}
	if err := ensureNS(ctx, g); err != nil {
		return err
	}
	host, _ := os.Hostname()
	identity := o.ops.identity
	if identity == "" {
		identity = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	metrics := reconcile.NewMetrics(version)
	events := reconcile.NewEventRecorder(c.Typed, recs.Namespace(), log)
	r.Progress = events.Emit // release-level events the reconciler reports (failed, waiting…)
	d := &reconcile.Daemon{
		Reconciler: r, Set: set, Sources: srcs, Interval: o.interval, Resync: o.resync, Workers: o.workers,
		Heartbeat: &reconcile.Heartbeat{Client: c.Typed, Namespace: g.recordsNS, Identity: identity, Version: version, Shard: shard},
		Metrics:   metrics, Events: events, Shard: shard,
	}
	if o.driftWatch {
		w, err := reconcile.NewDriftWatcher(r)
		if err != nil {
			return err
		}
		d.Drift = w
	}
	var election *reconcile.Election
	if o.ops.leaderElect {
		election = &reconcile.Election{
			Client: c.Typed, Namespace: recs.Namespace(), Name: shard.LeaderLease(), Identity: identity,
			LeaseDuration: o.ops.leaseDuration, RenewDeadline: o.ops.renewDeadline, RetryPeriod: o.ops.retryPeriod,
			Log: log, Metrics: metrics,
		}
	} else {
		metrics.SetLeader(true)
	}
	if listen != "" {
		stop, err := serveDaemonHTTP(ctx, listen, d, byName, log.Info, daemonHTTP{metrics: metrics, election: election, pprof: o.ops.pprof})
		if err != nil {
			return err
		}
		defer stop()
	}
	if election != nil {
		return election.Run(ctx, d.Run)
	}
	return d.Run(ctx)
}

// daemonHTTP is what the daemon serves besides webhooks and health.
type daemonHTTP struct {
	metrics  *reconcile.Metrics
	election *reconcile.Election // nil: no leader election
	pprof    bool
}

// serveDaemonHTTP serves webhooks, health endpoints, metrics and (when
// asked) profiles on addr.
func serveDaemonHTTP(ctx context.Context, addr string, d *reconcile.Daemon, byName map[string]watchedSource, logf func(string, ...any), extra daemonHTTP) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/", &webhook.Handler{
		Secrets: func(name string) (string, bool) {
			w, ok := byName[name]
			if !ok || w.secret == "" {
				return "", false // no secret configured: webhooks refused
			}
			return w.secret, true
		},
		Trigger: func(name string) {
			if w, ok := byName[name]; ok {
				logf("webhook", "source", w.location)
				d.Trigger(w.location)
			}
		},
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if e := extra.election; e != nil && !e.Leading() {
			// Not ready, so the Service sends webhooks to the leader only.
			http.Error(w, "standby: another replica holds the Lease "+e.Namespace+"/"+e.Name, http.StatusServiceUnavailable)
			return
		}
		for _, st := range d.Status() {
			if st.Revision == "" {
				http.Error(w, "source not fetched yet: "+st.Source, http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	if extra.metrics != nil {
		mux.Handle("/metrics", extra.metrics.Handler())
	}
	if extra.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("http server stopped", "error", err.Error())
		}
	}()
	logf("listening", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// scrapeAnnotations tell a Prometheus with the usual kubernetes_sd relabelling
// to scrape the daemon's /metrics.
func scrapeAnnotations() map[string]any {
	return map[string]any{"prometheus.io/scrape": "true", "prometheus.io/port": strconv.Itoa(daemonPort), "prometheus.io/path": "/metrics"}
}

func withAnnotations(u *unstructured.Unstructured, annotations map[string]any) *unstructured.Unstructured {
	a := u.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range annotations {
		a[k] = v.(string)
	}
	u.SetAnnotations(a)
	return u
}

// setReplicas sets the daemon Deployment's replicas.
func setReplicas(objs []*unstructured.Unstructured, n int) {
	for _, u := range objs {
		if u.GetKind() == "Deployment" && u.GetName() == daemonName {
			_ = unstructured.SetNestedField(u.Object, int64(n), "spec", "replicas")
		}
	}
}

// stalestHeartbeat is the heartbeat Lease renewed least recently among
// every shard's (one when not sharded); NotFound when there is none.
func stalestHeartbeat(ctx context.Context, c kubernetes.Interface, ns string) (*coordinationv1.Lease, error) {
	leases, err := reconcile.HeartbeatLeases(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	var stalest *coordinationv1.Lease
	for i := range leases {
		l := &leases[i]
		if stalest == nil || l.Spec.RenewTime == nil ||
			(stalest.Spec.RenewTime != nil && l.Spec.RenewTime.Before(stalest.Spec.RenewTime)) {
			stalest = l
		}
	}
	if stalest == nil {
		return nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), daemonLeaseName)
	}
	return stalest, nil
}
