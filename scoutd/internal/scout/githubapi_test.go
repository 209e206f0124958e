package scout

import (
	"strings"
	"testing"
)

// The token travels only over TLS: an http:// GitHub API base is refused
// even where plain http fetches are allowed, as the documentation says.
func TestGitHubAPIBaseIsHTTPSOnly(t *testing.T) {
	for _, tc := range []struct {
		name, api string
		allowHTTP bool
		ok        bool
	}{
		{"https", "https://ghe.example/api/v3", false, true},
		{"https with http allowed", "https://ghe.example/api/v3", true, true},
		{"http", "http://ghe.example/api/v3", false, false},
		{"http with http allowed", "http://ghe.example/api/v3", true, false},
		{"ip literal", "https://192.0.2.1/api/v3", false, false},
		{"query", "https://ghe.example/api/v3?x=1", false, false},
		{"userinfo", "https://u:p@ghe.example/api/v3", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{GitHubAPI: tc.api, AllowHTTP: tc.allowHTTP, Token: testToken})
			if (err == nil) != tc.ok {
				t.Fatalf("New(github api %s, allow http %v) = %v, want ok=%v", tc.api, tc.allowHTTP, err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Fatalf("error names the token: %v", err)
			}
		})
	}
}
