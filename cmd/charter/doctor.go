package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/spf13/cobra"
	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientversion "k8s.io/client-go/pkg/version"
	"k8s.io/client-go/rest"

	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/state"
)

// Check is one doctor finding.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Hint   string `json:"hint,omitempty"`
}

func newDoctorCmd(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that charter can work here: cluster, permissions, daemon, state, repositories, clock",
		Long: `Doctor checks, each as a line with ✓ or ✗ and a hint: the kubeconfig and context, the API
server (reachable, version skew), the permissions the CLI needs, whether a daemon follows the
declared state, the declared state itself, every repository's index, the keyrings of
repositories that require signatures, and the clock against the API server's. It exits
non-zero when a check fails.`,
		Example: `  charter doctor
  charter doctor -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			checks := g.doctor(cmd.Context())
			failed := 0
			for _, c := range checks {
				if !c.OK {
					failed++
				}
			}
			err := g.show(output, checks, func(w io.Writer) {
				for _, c := range checks {
					mark := "✓"
					if !c.OK {
						mark = "✗"
					}
					line := mark + " " + c.Name
					if c.Detail != "" {
						line += ": " + c.Detail
					}
					if !c.OK && c.Hint != "" {
						line += " (" + c.Hint + ")"
					}
					fmt.Fprintln(w, line)
				}
			})
			if err != nil {
				return err
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d checks failed", failed, len(checks))}
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (g *globalOptions) doctor(ctx context.Context) []Check {
	var out []Check
	add := func(name string, err error, detail, hint string) bool {
		c := Check{Name: name, OK: err == nil, Detail: detail, Hint: hint}
		if err != nil {
			c.Detail = oneLine(err.Error())
		}
		out = append(out, c)
		return err == nil
	}

	cfg, err := g.restConfig()
	if !add("kubeconfig", err, "context loaded", "check --kubeconfig, $KUBECONFIG and --context") {
		return out
	}
	cl, err := g.clusterClient()
	if err != nil {
		add("clients", err, "", "")
		return out
	}
	// Reachability, version and the server's clock in one request.
	var serverVersion string
	v, err := cl.Typed.Discovery().ServerVersion()
	if err == nil {
		serverVersion = v.GitVersion
	}
	if !add("API server", reconcile.ServerError(cfg.Host, err), "reachable at "+cfg.Host+", "+serverVersion, "is the cluster up, and the kubeconfig's server right?") {
		return out
	}
	add("version skew", skew(serverVersion), "client "+clientVersion()+", server "+serverVersion, "use a charter built for this Kubernetes version")
	serverDate := g.serverDate(ctx, cl)

	// Permissions the CLI needs.
	var missing []string
	for _, p := range []struct{ verb, group, resource, ns string }{
		{"list", "", "secrets", g.recordsNS}, {"create", "", "secrets", g.recordsNS}, {"update", "", "secrets", g.recordsNS},
		{"delete", "", "secrets", g.recordsNS}, {"get", "coordination.k8s.io", "leases", g.recordsNS},
		{"create", "", "namespaces", ""}, {"patch", "apps", "deployments", "default"}, {"get", "", "services", "default"},
	} {
		r, err := cl.Typed.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Verb: p.verb, Group: p.group, Resource: p.resource, Namespace: p.ns}},
		}, metav1.CreateOptions{})
		if err != nil || !r.Status.Allowed {
			where := p.ns
			if where == "" {
				where = "cluster"
			}
			missing = append(missing, p.verb+" "+p.resource+" in "+where)
		}
	}
	var permErr error
	if len(missing) > 0 {
		permErr = fmt.Errorf("not allowed: %s", strings.Join(missing, ", "))
	}
	add("permissions", permErr, "records, heartbeats, namespaces and workloads", "ask for the RBAC role in docs/commands.md")

	// The declared state, and whether a daemon follows it.
	store, err := g.openStore(ctx, false)
	var d *state.Dir
	if err == nil {
		d, err = store.Dir(ctx)
	}
	location := ""
	if store != nil {
		location = source.Redact(store.String())
	}
	if add("declared state", err, location, "charter init --state LOCATION, and check its credentials") {
		rels, errs := d.Scan(ctx)
		var scanErr error
		if len(errs) > 0 {
			scanErr = fmt.Errorf("%d unreadable declaration(s), first: %v", len(errs), errs[0])
		}
		add("declarations", scanErr, strconv.Itoa(len(rels))+" release(s) declared", "fix the files named")
		g.doctorDaemon(ctx, cl, store.String(), add)
		g.doctorRepositories(ctx, d, add)
	}

	// Clock skew against the API server.
	if !serverDate.IsZero() {
		diff := time.Since(serverDate)
		var skewErr error
		if diff > 30*time.Second || diff < -30*time.Second {
			skewErr = fmt.Errorf("local clock is %s off the API server's", diff.Round(time.Second))
		}
		add("clock", skewErr, "within "+diff.Abs().Round(time.Second).String()+" of the API server", "sync the clock (NTP): heartbeats and timestamps depend on it")
	}
	return out
}

// doctorDaemon checks the installed daemon (ready, its version) or, when
// none is installed, a daemon running elsewhere; then each source as the
// daemon last fetched it, with its own credentials.
func (g *globalOptions) doctorDaemon(ctx context.Context, cl *reconcile.Cluster, state string, add func(string, error, string, string) bool) {
	ns := g.installNamespace("")
	rep, err := daemonStatus(ctx, g, ns)
	if err != nil {
		add("daemon", err, "", "")
		return
	}
	switch {
	case rep.Installed && rep.ReadyReplicas < rep.Replicas:
		add("daemon", fmt.Errorf("installed in %s but %d/%d ready", ns, rep.ReadyReplicas, rep.Replicas), "",
			"charter daemon status --namespace "+ns+" says why")
	case rep.Installed:
		add("daemon", nil, fmt.Sprintf("installed in %s, %d/%d ready, %s", ns, rep.ReadyReplicas, rep.Replicas, rep.Image), "")
	case reconcile.DaemonServes(ctx, cl.Typed, g.recordsNS, state):
		add("daemon", nil, "not installed in the cluster; one runs elsewhere and follows "+source.Redact(state), "")
	default:
		add("daemon", fmt.Errorf("no daemon follows %s (deploy converges in-process)", source.Redact(state)), "",
			"charter daemon install --state URL, or charter daemon run --state "+source.Redact(state))
	}
	if rep.Heartbeat == "" {
		return
	}
	add("daemon version", versionSkew(version, rep.Version), "daemon "+orUnknown(rep.Version)+", CLI "+version,
		"upgrade one of them: charter daemon install --image "+defaultImageRepo+":"+version)
	for _, st := range rep.SourceStatus {
		var err error
		detail := fmt.Sprintf("fetched %s ago", time.Since(st.LastFetch).Round(time.Second))
		if rev, _, _ := strings.Cut(st.Revision, "|"); rev != "" {
			detail += " at " + shortRev(rev)
		}
		detail += fmt.Sprintf(", %d release(s)", st.Releases)
		if st.Error != "" {
			err = fmt.Errorf("the daemon cannot fetch it: %s", source.RedactText(st.Error))
		}
		add("source "+source.Redact(st.Source), err, detail, "check the URL and the credential the daemon uses for it (daemon install --credential)")
	}
}

func orUnknown(v string) string {
	if v == "" {
		return "unknown"
	}
	return v
}

// versionSkew fails when the daemon's and the CLI's release versions differ
// in major or minor; development builds are only reported.
func versionSkew(cli, daemon string) error {
	if daemon == "" {
		return fmt.Errorf("the daemon does not report its version (older than the CLI?)")
	}
	a, errA := semver.NewVersion(strings.TrimPrefix(cli, "v"))
	b, errB := semver.NewVersion(strings.TrimPrefix(daemon, "v"))
	if errA != nil || errB != nil {
		return nil // a development build: nothing to compare
	}
	if a.Major() != b.Major() || a.Minor() != b.Minor() {
		return fmt.Errorf("daemon %s and CLI %s differ in minor version", daemon, cli)
	}
	return nil
}

// doctorRepositories checks every repository's index and required keyrings.
func (g *globalOptions) doctorRepositories(ctx context.Context, st *state.Dir, add func(string, error, string, string) bool) {
	dec, err := g.declared()
	if err != nil {
		add("repositories", err, "", "")
		return
	}
	repos, policies, err := dec.Repositories(ctx, st)
	if !add("repositories", err, strconv.Itoa(len(repos))+" added", "check the credentials they name (charter credential list)") {
		return
	}
	for _, r := range repos {
		if strings.HasPrefix(r.URL, "oci://") {
			continue
		}
		idx, err := dec.Client.Index(ctx, r)
		detail := ""
		if err == nil {
			detail = strconv.Itoa(len(idx.Charts())) + " chart(s)"
		}
		add("repository "+r.Name, err, detail, "check the URL, the network and the credential")
		if p := policies[r.Name]; p.RequireSignatures {
			path, err := st.ResolvePath(p.Keyring)
			if err == nil {
				_, err = os.Stat(path)
			}
			add("keyring of "+r.Name, err, p.Keyring, "put the public keyring in the state at that path")
		}
	}
}

// serverDate reads the API server's clock from its Date header.
func (g *globalOptions) serverDate(ctx context.Context, cl *reconcile.Cluster) time.Time {
	hc, err := restHTTPClient(cl)
	if err != nil {
		return time.Time{}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cl.Config.Host, "/")+"/version", nil)
	if err != nil {
		return time.Time{}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return time.Time{}
	}
	resp.Body.Close()
	t, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return time.Time{}
	}
	return t
}

func clientVersion() string {
	v := clientversion.Get().GitVersion
	if v == "" || strings.HasPrefix(v, "v0.0.0") {
		return "client-go v0.37"
	}
	return v
}

// skew reports a server more than one minor version away from client-go's.
func skew(server string) error {
	minor := func(v string) int {
		parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
		if len(parts) < 2 {
			return -1
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			return -1
		}
		return n
	}
	s := minor(server)
	const clientMinor = 37 // k8s.io/client-go v0.37
	if s < 0 {
		return fmt.Errorf("cannot read the server version %q", server)
	}
	if d := clientMinor - s; d > 1 || d < -1 {
		return fmt.Errorf("server %s is %d minor versions from client-go 1.%d", server, d, clientMinor)
	}
	return nil
}

// restHTTPClient is an HTTP client authenticated like the cluster's clients.
func restHTTPClient(cl *reconcile.Cluster) (*http.Client, error) {
	return rest.HTTPClientFor(cl.Config)
}
