package git

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/charter-sh/charter/source"
)

// TokenUser is the basic-auth user name sent with a token when no user
// name is given (GitHub's convention; GitLab, Gitea and Bitbucket accept
// any user name with a token).
const TokenUser = "x-access-token"

// sshDialTimeout bounds connecting and the SSH handshake.
const sshDialTimeout = 30 * time.Second

// Auth returns how to authenticate to the repository of spec, or nil when
// nothing is needed (file://, or http(s) without credentials).
//
// https and http: basic auth with Username and Password, or with Token as
// the password (user TokenUser unless Username is set). Credentials in
// creds win over user info in the location.
//
// ssh: the user from the location (default "git"), with the private key in
// creds.SSHKeyFile (decrypted with SSHKeyPassphrase); without a key file,
// the ssh-agent at $SSH_AUTH_SOCK, else the first of ~/.ssh/id_ed25519,
// id_ecdsa and id_rsa that exists; a password in the location is offered
// too. The server's host key must be listed in creds.KnownHostsFile
// (default ~/.ssh/known_hosts), unless creds.InsecureIgnoreHostKey is set.
//
// Auth reads the key and known_hosts files; it does not connect. Errors
// never contain a password, token or passphrase.
func Auth(spec Spec, creds source.Credentials) (transport.AuthMethod, error) {
	switch spec.Scheme {
	case "file":
		return nil, nil
	case "http", "https":
		user, pass := spec.Username, spec.Password
		if creds.Username != "" {
			user = creds.Username
		}
		switch {
		case creds.Token != "":
			pass = creds.Token
			if creds.Username == "" {
				user = TokenUser
			}
		case creds.Password != "":
			pass = creds.Password
		}
		if user == "" && pass == "" {
			return nil, nil
		}
		return &githttp.BasicAuth{Username: user, Password: pass}, nil
	case "ssh":
		return sshAuthFor(spec, creds)
	}
	return nil, fmt.Errorf("git location %s: no authentication for scheme %q", spec, spec.Scheme)
}

// sshAuth is go-git's ssh.AuthMethod with everything decided by us: the
// signers, the host key check and the algorithms it accepts.
type sshAuth struct {
	user        string
	methods     []ssh.AuthMethod
	describe    string
	hostKey     ssh.HostKeyCallback
	algorithms  func(hostport string) []string
	hostport    string
	dialTimeout time.Duration
}

func (a *sshAuth) Name() string   { return "ssh-" + a.describe }
func (a *sshAuth) String() string { return fmt.Sprintf("user: %s, name: ssh-%s", a.user, a.describe) }

// ClientConfig is called by go-git for every connection.
func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	cfg := &ssh.ClientConfig{
		User:            a.user,
		Auth:            a.methods,
		HostKeyCallback: a.hostKey,
		Timeout:         a.dialTimeout,
	}
	if a.algorithms != nil {
		cfg.HostKeyAlgorithms = a.algorithms(a.hostport)
	}
	return cfg, nil
}

func sshAuthFor(spec Spec, creds source.Credentials) (*sshAuth, error) {
	fail := func(format string, args ...any) (*sshAuth, error) {
		return nil, fmt.Errorf("git %s: %s", spec, fmt.Sprintf(format, args...))
	}
	a := &sshAuth{user: spec.Username, dialTimeout: sshDialTimeout, hostport: sshHostPort(spec)}
	if a.user == "" {
		a.user = "git"
	}
	home, _ := os.UserHomeDir()

	switch {
	case creds.SSHKeyFile != "":
		signer, err := readKey(creds.SSHKeyFile, creds.SSHKeyPassphrase)
		if err != nil {
			return fail("%v", err)
		}
		a.methods = append(a.methods, ssh.PublicKeys(signer))
		a.describe = "public-keys"
	case os.Getenv("SSH_AUTH_SOCK") != "":
		ag := &agentSigners{sock: os.Getenv("SSH_AUTH_SOCK")}
		a.methods = append(a.methods, ssh.PublicKeysCallback(ag.signers))
		a.describe = "agent"
	default:
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			p := filepath.Join(home, ".ssh", name)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			signer, err := readKey(p, creds.SSHKeyPassphrase)
			if err != nil {
				return fail("%v", err)
			}
			a.methods = append(a.methods, ssh.PublicKeys(signer))
			a.describe = "public-keys"
			break
		}
	}
	if spec.Password != "" {
		a.methods = append(a.methods, ssh.Password(spec.Password))
		if a.describe == "" {
			a.describe = "password"
		}
	}
	if len(a.methods) == 0 {
		return fail("no ssh key: set an SSH key file, run an ssh-agent, or create ~/.ssh/id_ed25519")
	}

	if creds.InsecureIgnoreHostKey {
		a.hostKey = ssh.InsecureIgnoreHostKey()
		return a, nil
	}
	file := creds.KnownHostsFile
	if file == "" {
		if home == "" {
			return fail("no known_hosts file: set one, or skip host key checking explicitly")
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return fail("read known_hosts: %v (set a known_hosts file, or skip host key checking explicitly)", err)
	}
	a.hostKey = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) == 0 {
				return fmt.Errorf("host key for %s (%s) is not in %s", hostname, key.Type(), file)
			}
			return fmt.Errorf("host key for %s (%s %s) does not match %s: possible man-in-the-middle", hostname, key.Type(), ssh.FingerprintSHA256(key), file)
		}
		return err
	}
	a.algorithms = func(hostport string) []string { return knownAlgorithms(cb, hostport) }
	return a, nil
}

// agentSigners asks an ssh-agent for its keys over one connection, kept
// open because signing happens after the callback returns; it is redialled
// when the agent went away.
type agentSigners struct {
	sock string
	mu   sync.Mutex
	conn net.Conn
}

func (a *agentSigners) signers() ([]ssh.Signer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for try := 0; try < 2; try++ {
		if a.conn == nil {
			conn, err := net.Dial("unix", a.sock)
			if err != nil {
				return nil, fmt.Errorf("ssh-agent %s: %w", a.sock, err)
			}
			a.conn = conn
		}
		s, err := agent.NewClient(a.conn).Signers()
		if err == nil {
			return s, nil
		}
		a.conn.Close()
		a.conn = nil
		if try == 1 {
			return nil, fmt.Errorf("ssh-agent %s: %w", a.sock, err)
		}
	}
	return nil, nil
}

func readKey(file, passphrase string) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read ssh key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == "" {
			return nil, fmt.Errorf("ssh key %s is encrypted: give its passphrase", file)
		}
		signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(passphrase))
	}
	if err != nil {
		// x/crypto's messages never quote the passphrase.
		return nil, fmt.Errorf("ssh key %s: %w", file, err)
	}
	return signer, nil
}

func sshHostPort(spec Spec) string {
	if m := scpLike.FindStringSubmatch(spec.URL); m != nil && !strings.Contains(spec.URL, "://") {
		return net.JoinHostPort(m[2], "22")
	}
	host := strings.TrimPrefix(spec.URL, "ssh://")
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(strings.Trim(host, "[]"), "22")
	}
	return host
}

// knownAlgorithms returns the host key algorithms known_hosts lists for
// hostport, so the server is asked for a key we can check (it may hold
// several). knownhosts reveals them when asked about a key it does not
// know. Nil (x/crypto's defaults) when the host is not listed.
func knownAlgorithms(cb ssh.HostKeyCallback, hostport string) []string {
	err := cb(hostport, &net.TCPAddr{IP: net.IPv4zero}, placeholderKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var algos []string
	add := func(a ...string) {
		for _, s := range a {
			if !seen[s] {
				seen[s] = true
				algos = append(algos, s)
			}
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		case ssh.CertAlgoRSAv01:
			add(ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01)
		default:
			add(t)
		}
	}
	return algos
}

// placeholderKey is a key no known_hosts file lists.
type placeholderKey struct{}

func (placeholderKey) Type() string                        { return "placeholder" }
func (placeholderKey) Marshal() []byte                     { return []byte("placeholder") }
func (placeholderKey) Verify([]byte, *ssh.Signature) error { return errors.New("placeholder key") }
