package credential

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

const (
	// DefaultNamespace is charter's namespace: where credentials live unless
	// NewStore is given another.
	DefaultNamespace = "charter-system"
	// SecretType is the type of the Secret holding a credential.
	SecretType corev1.SecretType = "charter.sh/credential"
	// LabelOwner and LabelKind label every credential Secret, with the
	// values OwnerValue and KindValue.
	LabelOwner = "owner"
	LabelKind  = "charter.sh/kind"
	OwnerValue = "charter"
	KindValue  = "credential"
	// TokenKey and SecretKey are the keys of the Secret's data.
	TokenKey  = "token"
	SecretKey = "secret"

	// MaxTokenLength and MaxSecretLength bound what Add accepts.
	MaxTokenLength  = 1024
	MaxSecretLength = 64 << 10

	defaultPrefix = "token-"
	maxSuffix     = 1000 // default-name clashes tried before giving up
)

var (
	// ErrNotFound is wrapped by the error for a credential that does not
	// exist: `credential "x" not found`.
	ErrNotFound = errors.New("not found")
	// ErrExists is wrapped by Add's error when an explicit name is taken:
	// `credential "x" already exists`.
	ErrExists = errors.New("already exists")
)

// Credential is a named token and secret. Its String, every fmt verb and
// its JSON and YAML forms show Name, Token and Created only: the secret is
// reachable through Secret alone.
type Credential struct {
	Name    string    `json:"name"`
	Token   string    `json:"token"`
	Created time.Time `json:"created,omitzero"`
	// secret is behind a pointer in an unexported field so that neither
	// encoders nor fmt's reflection (even for a Credential nested in
	// another value) ever print it.
	secret *string
}

// New returns a credential that is not stored anywhere, for callers that
// get a token and secret elsewhere (flags, the environment, tests).
func New(name, token, secret string) *Credential {
	return &Credential{Name: name, Token: token, secret: &secret}
}

// Secret returns the secret, or "" for a credential returned by List or
// Add, which never carry it.
func (c Credential) Secret() string {
	if c.secret == nil {
		return ""
	}
	return *c.secret
}

// HasSecret reports whether c carries its secret (a credential from Get or
// New does).
func (c Credential) HasSecret() bool { return c.secret != nil }

// String returns `credential NAME (token TOKEN)`, never the secret.
func (c Credential) String() string {
	return fmt.Sprintf("credential %s (token %s)", c.Name, printable(c.Token))
}

// GoString is like String, for %#v.
func (c Credential) GoString() string {
	return fmt.Sprintf("credential.Credential{Name:%q, Token:%q, Created:%q, Secret:<redacted>}",
		c.Name, c.Token, c.Created.Format(time.RFC3339))
}

// Format makes every fmt verb print String (GoString for %#v), so no verb
// can reach the secret through reflection.
func (c Credential) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// printable quotes s when it holds characters a terminal would interpret.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// Store reads and writes credentials as Secrets in one namespace.
type Store struct {
	client    kubernetes.Interface
	namespace string
}

// NewStore returns a store keeping credentials in namespace (DefaultNamespace
// when empty). It does not contact the cluster.
func NewStore(client kubernetes.Interface, namespace string) *Store {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return &Store{client: client, namespace: namespace}
}

// Namespace returns the namespace the store keeps credentials in.
func (s *Store) Namespace() string { return s.namespace }

// ValidateName reports whether name can name a credential: a DNS-1123 label
// (lowercase letters, digits and '-', at most 63 characters).
func ValidateName(name string) error {
	if name == "" {
		return errors.New("credential name is empty: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)")
	}
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return fmt.Errorf("credential name %q is invalid: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)", name)
	}
	return nil
}

// DefaultName returns the name Add gives a credential when none is asked
// for: "token-" followed by the first 8 characters of token, lowercased,
// with anything but letters and digits turned into '-' (so "Foo" gives
// "token-foo"). A token with no letter or digit among them gives "token-"
// and 8 hex digits of its SHA-256.
func DefaultName(token string) string {
	var b strings.Builder
	n := 0
	for _, r := range token {
		if n == 8 {
			break
		}
		n++
		r = unicode.ToLower(r)
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if s := b.String(); s != "" && !strings.HasSuffix(s, "-") {
			b.WriteByte('-')
		}
	}
	id := strings.Trim(b.String(), "-")
	if id == "" {
		sum := sha256.Sum256([]byte(token))
		id = hex.EncodeToString(sum[:4])
	}
	return defaultPrefix + id
}

func validateToken(token string) error {
	switch {
	case token == "":
		return errors.New("token is empty")
	case len(token) > MaxTokenLength:
		return fmt.Errorf("token is %d bytes long: must be at most %d", len(token), MaxTokenLength)
	case !utf8.ValidString(token):
		return errors.New("token is not valid UTF-8")
	}
	for _, r := range token {
		if !unicode.IsPrint(r) {
			// The token is not secret, but it might be a mistyped secret:
			// do not echo it.
			return errors.New("token holds a control or whitespace character other than a space")
		}
	}
	return nil
}

func validateSecret(secret string) error {
	switch {
	case secret == "":
		return errors.New("secret is empty")
	case len(secret) > MaxSecretLength:
		return fmt.Errorf("secret is %d bytes long: must be at most %d", len(secret), MaxSecretLength)
	}
	return nil
}

// Add stores a new credential and returns it (without its secret). With
// name empty it is named DefaultName(token), or that name with a suffix
// ("-2", "-3"…) when taken. An explicit name that is taken — by a
// credential or by any other Secret — is an error wrapping ErrExists;
// nothing is ever replaced. The namespace is created when missing.
func (s *Store) Add(ctx context.Context, token, secret, name string) (*Credential, error) {
	if err := validateToken(token); err != nil {
		return nil, fmt.Errorf("add credential: %w", err)
	}
	if err := validateSecret(secret); err != nil {
		return nil, fmt.Errorf("add credential: %w", err)
	}
	explicit := name != ""
	if explicit {
		if err := ValidateName(name); err != nil {
			return nil, fmt.Errorf("add credential: %w", err)
		}
	}
	if err := s.ensureNamespace(ctx); err != nil {
		return nil, fmt.Errorf("add credential: %w", err)
	}
	base := name
	if !explicit {
		base = DefaultName(token)
	}
	for i := 1; i <= maxSuffix; i++ {
		candidate := base
		if i > 1 {
			candidate = withSuffix(base, i)
		}
		obj, err := s.client.CoreV1().Secrets(s.namespace).Create(ctx, newSecret(s.namespace, candidate, token, secret), metav1.CreateOptions{})
		if err == nil {
			return fromSecret(obj, false)
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("add credential %q: %w", candidate, err)
		}
		if explicit {
			if _, getErr := s.get(ctx, name); getErr != nil && errors.Is(getErr, ErrNotFound) {
				return nil, fmt.Errorf("add credential %q: a Secret of that name, not a charter credential, %w in namespace %s", name, ErrExists, s.namespace)
			}
			return nil, fmt.Errorf("credential %q %w", name, ErrExists)
		}
	}
	return nil, fmt.Errorf("add credential: names %s to %s are all taken: give one with --name", base, withSuffix(base, maxSuffix))
}

// withSuffix appends "-i" to base, shortening base to stay within 63
// characters.
func withSuffix(base string, i int) string {
	suffix := "-" + strconv.Itoa(i)
	if len(base)+len(suffix) > validation.DNS1123LabelMaxLength {
		base = strings.TrimRight(base[:validation.DNS1123LabelMaxLength-len(suffix)], "-")
	}
	return base + suffix
}

func newSecret(namespace, name, token, secret string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: namespace,
			Labels:    map[string]string{LabelOwner: OwnerValue, LabelKind: KindValue},
		},
		Type: SecretType,
		Data: map[string][]byte{TokenKey: []byte(token), SecretKey: []byte(secret)},
	}
}

// SecretObject is the Secret the store would write for c in namespace, for
// callers that copy a credential into another namespace (daemon install).
// It holds the secret: never print it.
func SecretObject(namespace string, c *Credential) *corev1.Secret {
	secret := ""
	if c.secret != nil {
		secret = *c.secret
	}
	return newSecret(namespace, c.Name, c.Token, secret)
}

// isCredential reports whether obj is a Secret this package wrote.
func isCredential(obj *corev1.Secret) bool {
	return obj.Type == SecretType && obj.Labels[LabelKind] == KindValue && obj.Labels[LabelOwner] == OwnerValue
}

// fromSecret reads a credential Secret, with its secret when withSecret.
func fromSecret(obj *corev1.Secret, withSecret bool) (*Credential, error) {
	token, ok := obj.Data[TokenKey]
	if !ok || len(token) == 0 {
		return nil, fmt.Errorf("credential %q: Secret %s/%s has no %s", obj.Name, obj.Namespace, obj.Name, TokenKey)
	}
	c := &Credential{Name: obj.Name, Token: string(token), Created: obj.CreationTimestamp.Time}
	if withSecret {
		secret, ok := obj.Data[SecretKey]
		if !ok || len(secret) == 0 {
			return nil, fmt.Errorf("credential %q: Secret %s/%s has no %s", obj.Name, obj.Namespace, obj.Name, SecretKey)
		}
		s := string(secret)
		c.secret = &s
	}
	return c, nil
}

func (s *Store) ensureNamespace(ctx context.Context) error {
	_, err := s.client.CoreV1().Namespaces().Get(ctx, s.namespace, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get namespace %s: %w", s.namespace, err)
	}
	_, err = s.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: s.namespace, Labels: map[string]string{LabelOwner: OwnerValue}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", s.namespace, err)
	}
	return nil
}

// Get returns the credential called name with its secret, or an error
// wrapping ErrNotFound. A Secret of that name that is not a charter
// credential counts as not found.
func (s *Store) Get(ctx context.Context, name string) (*Credential, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("get credential: %w", err)
	}
	obj, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	return fromSecret(obj, true)
}

func (s *Store) get(ctx context.Context, name string) (*corev1.Secret, error) {
	obj, err := s.client.CoreV1().Secrets(s.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && !isCredential(obj)) {
		return nil, fmt.Errorf("credential %q %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get credential %q: %w", name, err)
	}
	return obj, nil
}

// List returns the credentials whose name matches the glob pattern (see
// path.Match; empty matches all), sorted by name, without their secrets.
// A missing namespace holds no credentials.
func (s *Store) List(ctx context.Context, pattern string) ([]Credential, error) {
	if pattern != "" {
		if _, err := path.Match(pattern, ""); err != nil {
			return nil, fmt.Errorf("list credentials: pattern %q: %w", pattern, err)
		}
	}
	opts := metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{LabelOwner: OwnerValue, LabelKind: KindValue}).String(),
		FieldSelector: fields.OneTermEqualSelector("type", string(SecretType)).String(),
		Limit:         500,
	}
	var out []Credential
	for {
		list, err := s.client.CoreV1().Secrets(s.namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list credentials in namespace %s: %w", s.namespace, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			if !isCredential(obj) {
				continue
			}
			if pattern != "" {
				if ok, _ := path.Match(pattern, obj.Name); !ok {
					continue
				}
			}
			c, err := fromSecret(obj, false)
			if err != nil {
				return nil, fmt.Errorf("list credentials: %w", err)
			}
			out = append(out, *c)
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes the credential called name, or returns an error wrapping
// ErrNotFound (`credential "x" not found`). A Secret of that name that is
// not a charter credential is left alone and reported as not found.
func (s *Store) Remove(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("remove credential: %w", err)
	}
	obj, err := s.get(ctx, name)
	if err != nil {
		return err
	}
	// The precondition makes sure what is deleted is what was checked.
	uid := types.UID(obj.UID)
	err = s.client.CoreV1().Secrets(s.namespace).Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("credential %q %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("remove credential %q: %w", name, err)
	}
	return nil
}
