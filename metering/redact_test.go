package metering

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestMaskSecrets checks that keys and bearer tokens anywhere in stored
// text keep only their last four characters, the way DeepSeek's own error
// messages show a key, while text that merely looks similar is unchanged.
func TestMaskSecrets(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"no secret", "hello world", "hello world"},
		{"key alone", "sk-0123456789abcdef0123456789abcdef", "sk-****cdef"},
		{"key in JSON", `{"content":"my key is sk-aaaabbbbccccdddd1234 ok"}`, `{"content":"my key is sk-****1234 ok"}`},
		{"two keys", "sk-11111111aaaa and sk-22222222bbbb", "sk-****aaaa and sk-****bbbb"},
		{"DeepSeek error text", "Authentication Fails, Your api key: ****abcd is invalid", "Authentication Fails, Your api key: ****abcd is invalid"},
		{"short sk- word", "task-sk-abc stays", "task-sk-abc stays"},
		{"bearer token", "Authorization: Bearer abcdefghijklmnop5678", "Authorization: Bearer ****5678"},
		{"bearer lower case", "bearer tok_ABCDEFGH.ijkl==", "bearer ****kl=="},
		{"bearer with key", "Bearer sk-0123456789abcdefWXYZ", "Bearer sk-****WXYZ"},
		{"bearer short word", "the bearer of news", "the bearer of news"},
		{"bearer in JSON escape", `"Authorization":"Bearer xyzxyzxyz9999"`, `"Authorization":"Bearer ****9999"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaskSecrets(tt.in); got != tt.want {
				t.Errorf("MaskSecrets(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestCallMasksKeysInBodies runs a call whose request and error response
// carry a key, as a 401 echo does, and checks that no stored field keeps
// more than the key's last four characters.
func TestCallMasksKeysInBodies(t *testing.T) {
	const key = "sk-e2etestkey000000000000000000wxyz"
	env := newMeterEnv(t, Options{})
	req := `{"model":"deepseek-chat","messages":[{"role":"user","content":"use ` + key + ` and Bearer ` + key + `"}]}`
	resp := `{"error":{"message":"Authentication Fails, Your api key ` + key + ` is invalid","type":"authentication_error"}}`
	rec := env.run("/chat/completions", req, &response{status: 401, header: jsonHeader(), chunks: [][]byte{[]byte(resp)}}, End{})

	for field, value := range map[string]string{
		"request_data":  rec.RequestData,
		"response_data": rec.ResponseData,
		"message":       rec.Message,
		"error_message": rec.ErrorMessage,
	} {
		if strings.Contains(value, key[:20]) {
			t.Errorf("%s = %q, want the key masked", field, value)
		}
		if !strings.Contains(value, "sk-****wxyz") {
			t.Errorf("%s = %q, want the mask sk-****wxyz", field, value)
		}
	}
}

// TestCallBodyStorage checks the two ways bodies are left out: the
// server-wide BodiesNone and the per-call opt-out. The metering columns
// must stay, because the call still costs money.
func TestCallBodyStorage(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		attr     Attribution
		wantData bool
	}{
		{"stored", Options{}, Attribution{}, true},
		{"none for the server", Options{Bodies: BodiesNone}, Attribution{}, false},
		{"none for the call", Options{}, Attribution{NoBodies: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, tt.opts)
			call := env.meter.Begin("call-1", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", false)), tt.attr)
			env.clock.Advance(100 * time.Millisecond)
			call.Response(200, jsonHeader())
			call.Write([]byte(chatCompletion("deepseek-chat", "Hello", usageJSON(100, 20, 60, 40))))
			rec := call.Finish(End{})

			if got := rec.RequestData != "" && rec.ResponseData != ""; got != tt.wantData {
				t.Errorf("bodies stored = %v (request %q, response %q), want %v", got, rec.RequestData, rec.ResponseData, tt.wantData)
			}
			if !tt.wantData && rec.Message != "N/A" {
				t.Errorf("message = %q, want N/A without bodies", rec.Message)
			}
			if rec.PromptTokens != 100 || rec.CompletionTokens != 20 || !rec.Priced || !rec.Success {
				t.Errorf("prompt, completion, priced, success = %d, %d, %v, %v; want 100, 20, true, true",
					rec.PromptTokens, rec.CompletionTokens, rec.Priced, rec.Success)
			}
		})
	}
}

// TestCallRedactRules checks that custom rules rewrite every body-derived
// field and that a rule cannot bring back a key that masking removes.
func TestCallRedactRules(t *testing.T) {
	rules := []RedactRule{
		{Pattern: regexp.MustCompile(`[a-z.]+@[a-z.]+`), Replacement: "<email>"},
		{Pattern: regexp.MustCompile(`cust-(\d+)`), Replacement: "cust-#"},
	}
	env := newMeterEnv(t, Options{RedactRules: rules})
	req := `{"model":"deepseek-chat","messages":[{"role":"user","content":"mail ann@example.com about cust-4411"}]}`
	resp := `{"error":{"message":"blocked for ann@example.com","type":"invalid_request_error"}}`
	rec := env.run("/chat/completions", req, &response{status: 400, header: jsonHeader(), chunks: [][]byte{[]byte(resp)}}, End{})

	for field, value := range map[string]string{
		"request_data":  rec.RequestData,
		"response_data": rec.ResponseData,
		"message":       rec.Message,
		"error_message": rec.ErrorMessage,
	} {
		if strings.Contains(value, "ann@example.com") || strings.Contains(value, "4411") {
			t.Errorf("%s = %q, want the email and customer id redacted", field, value)
		}
	}
	if want := "mail <email> about cust-#"; rec.Message != want {
		t.Errorf("message = %q, want %q", rec.Message, want)
	}
}

// TestParseRedactRules checks the rule file parser: good YAML and JSON
// files, and errors that name the rule at fault.
func TestParseRedactRules(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    int
		wantErr string
	}{
		{"yaml", "- pattern: '[a-z]+@[a-z.]+'\n  replacement: '<email>'\n- pattern: '\\+?\\d{10,}'\n  replacement: '<phone>'\n", 2, ""},
		{"json", `[{"pattern":"cust-\\d+","replacement":"cust-#"}]`, 1, ""},
		{"README example", "- pattern: '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}'\n  replacement: '<email>'\n- pattern: 'cust-(\\d{2})\\d+'\n  replacement: 'cust-$1…'\n", 2, ""},
		{"empty replacement", `[{"pattern":"secret","replacement":""}]`, 1, ""},
		{"empty file", "", 0, "empty"},
		{"empty list", "[]", 0, "empty"},
		{"not a list", "pattern: x\n", 0, "expected a list"},
		{"unknown key", `[{"pattern":"x","replacement":"y","flags":"i"}]`, 0, "expected a list"},
		{"missing pattern", `[{"pattern":"a","replacement":"b"},{"replacement":"b"}]`, 0, "rule 2: missing pattern"},
		{"missing replacement", `[{"pattern":"a"}]`, 0, `rule 1 (pattern "a"): missing replacement`},
		{"bad regexp", `[{"pattern":"a","replacement":""},{"pattern":"(","replacement":""}]`, 0, `rule 2 (pattern "("): invalid regular expression`},
		{"matches empty", `[{"pattern":"a*","replacement":"x"}]`, 0, "can match the empty string"},
		{"flags only", `[{"pattern":"(?i)","replacement":"x"}]`, 0, "can match the empty string"},
		{"word boundary", `[{"pattern":"\\b","replacement":"x"}]`, 0, "can match the empty string"},
		{"not a word boundary", `[{"pattern":"\\B","replacement":"x"}]`, 0, "can match the empty string"},
		{"line anchors", `[{"pattern":"(?m)^$","replacement":"x"}]`, 0, "can match the empty string"},
		{"end of text", `[{"pattern":"$","replacement":"x"}]`, 0, "can match the empty string"},
		{"empty alternative", `[{"pattern":"cust|\\b","replacement":"x"}]`, 0, "can match the empty string"},
		{"optional group", `[{"pattern":"(?:id-\\d+)?\\b","replacement":"x"}]`, 0, "can match the empty string"},
		{"zero repeat", `[{"pattern":"x{0,3}","replacement":"y"}]`, 0, "can match the empty string"},
		{"anchored word", `[{"pattern":"^\\bcust-\\d+\\b$","replacement":"x"}]`, 1, ""},
		{"plus of class", `[{"pattern":"[0-9]+","replacement":"#"}]`, 1, ""},
		{"pattern too long", `[{"pattern":"` + strings.Repeat("a", 1001) + `","replacement":""}]`, 0, "at most 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := ParseRedactRules([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v, want none", err)
			}
			if len(rules) != tt.want {
				t.Errorf("%d rules, want %d", len(rules), tt.want)
			}
		})
	}
}

// FuzzParseRedactRules feeds arbitrary files to the parser, which must
// return rules or an error, never panic, and never accept a rule that
// matches the empty string anywhere in a probe text.
func FuzzParseRedactRules(f *testing.F) {
	f.Add([]byte(`[{"pattern":"cust-\\d+","replacement":"cust-#"}]`))
	f.Add([]byte("- pattern: 'a+'\n  replacement: b\n"))
	f.Add([]byte("- pattern: '('\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("- pattern: '\\b'\n  replacement: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseRedactRules(data)
		if err != nil {
			return
		}
		for i, r := range rules {
			for _, probe := range []string{"", "a", "a b", "ab-1 c", "\n\n"} {
				for _, loc := range r.Pattern.FindAllStringIndex(probe, -1) {
					if loc[0] == loc[1] {
						t.Errorf("rule %d (%s) matches the empty string at %d of %q", i+1, r.Pattern, loc[0], probe)
					}
				}
			}
		}
	})
}

// FuzzMaskSecrets checks that no "sk-" key of the masked length survives
// masking and that text without a secret is unchanged.
func FuzzMaskSecrets(f *testing.F) {
	f.Add("sk-0123456789abcdef and Bearer abcdefgh1234")
	f.Add("plain text")
	f.Fuzz(func(t *testing.T, s string) {
		got := MaskSecrets(s)
		if apiKeyPattern.MatchString(got) {
			t.Errorf("MaskSecrets(%q) = %q, still contains a key", s, got)
		}
		if !strings.Contains(s, "sk-") && !containsFold(s, "bearer") && got != s {
			t.Errorf("MaskSecrets(%q) = %q, want it unchanged", s, got)
		}
	})
}

// TestCallMasksKeysInShortColumns sends a key as the user id, in the body
// and as the attribution header, and in the other short columns a client
// fills. Those columns are listed and filtered in the admin API, so a key
// there is as exposed as one in a body.
func TestCallMasksKeysInShortColumns(t *testing.T) {
	const key = "sk-shortcolumnkey0000000000000wxyz"
	rules := []RedactRule{{Pattern: regexp.MustCompile(`[a-z]+@example\.com`), Replacement: "<email>"}}
	tests := []struct {
		name string
		body string
		attr Attribution
	}{
		{"user in body", `{"model":"deepseek-chat","user":"` + key + `","messages":[]}`, Attribution{}},
		{"user header", `{"model":"deepseek-chat","messages":[]}`, Attribution{UserID: "bob@example.com " + key}},
		{"page tab and endpoint", `{"model":"deepseek-chat","messages":[]}`, Attribution{PageTab: key, Endpoint: "/feature/" + key}},
		{"model", `{"model":"` + key + `","messages":[]}`, Attribution{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{RedactRules: rules})
			call := env.meter.Begin("call-1", testStart, "/chat/completions", []byte(tt.body), tt.attr)
			call.Response(200, jsonHeader())
			call.Write([]byte(chatCompletion("deepseek-chat", "hi", usageJSON(10, 2, 0, 10))))
			rec := call.Finish(End{StatusCode: 200})

			for column, value := range map[string]string{
				"user_id":         rec.UserID,
				"page_tab":        rec.PageTab,
				"endpoint":        rec.Endpoint,
				"upstream_path":   rec.UpstreamPath,
				"requested_model": rec.RequestedModel,
				"model":           rec.Model,
			} {
				if strings.Contains(value, key[3:15]) {
					t.Errorf("%s = %q, want the key masked", column, value)
				}
				if strings.Contains(value, "bob@") {
					t.Errorf("%s = %q, want the email redacted", column, value)
				}
			}
		})
	}
}

// TestMaskCutKey checks the masking of a key or bearer token that a cut
// at the storage cap split: the fragment keeps no key character, however
// few of them remain and however "sk-" is spelled.
func TestMaskCutKey(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"five key characters", `{"content":"xxsk-ABCDE`, `{"content":"xxsk-****`},
		{"twelve key characters", `{"content":"a sk-ABCDEFGHIJKL`, `{"content":"a sk-****`},
		{"prefix only", `{"content":"a sk-`, `{"content":"a sk-****`},
		{"escaped dash", `{"content":"a sk\u002dABCDE`, `{"content":"a sk-****`},
		{"half an escape", `{"content":"a sk-ABCDE\u00`, `{"content":"a sk-****`},
		{"after a newline escape", `{"content":"a\nsk-ABC`, `{"content":"a\nsk-****`},
		{"bearer token", `"Authorization: Bearer abcdef`, `"Authorization: Bearer ****`},
		{"bearer with a key", `"bearer sk-abcdef`, `"bearer sk-****`},
		{"cut before the key", `{"content":"a s`, `{"content":"a s`},
		{"cut after sk", `{"content":"a sk`, `{"content":"a sk`},
		{"ordinary word", `{"content":"hello world`, `{"content":"hello world`},
		{"bearer with no token", `{"content":"the bearer `, `{"content":"the bearer `},
		{"empty", ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := maskCutKey(tt.in); got != tt.want {
				t.Errorf("maskCutKey(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// TestCallMasksKeyAtCut stores a request body, a JSON response body and
// a stream's text each cut in the middle of a key, and checks that no
// more than "sk-" of the key is stored. A key cut after fewer than eight
// characters escapes MaskSecrets, so the cut must mask it.
func TestCallMasksKeyAtCut(t *testing.T) {
	const maxStored = 128
	const key = "sk-CUTKEYCUTKEYCUTKEY0123456789wxyz"
	// pad puts the key's first 3+keep bytes at the end of the first
	// maxStored bytes of prefix+pad+key.
	pad := func(prefix string, keep int) string {
		return strings.Repeat("p", maxStored-len(prefix)-len("sk-")-keep)
	}
	reqPrefix := `{"model":"deepseek-chat","messages":[{"role":"user","content":"`
	respPrefix := `{"error":{"message":"`

	for _, keep := range []int{1, 5, 12} {
		t.Run(fmt.Sprintf("%d key characters", keep), func(t *testing.T) {
			env := newMeterEnv(t, Options{MaxStoredBody: maxStored})
			req := reqPrefix + pad(reqPrefix, keep) + key + `"}]}`
			resp := respPrefix + pad(respPrefix, keep) + key + ` is invalid","type":"authentication_error"}}`
			rec := env.run("/chat/completions", req, &response{status: 401, header: jsonHeader(), chunks: [][]byte{[]byte(resp)}}, End{})

			for column, value := range map[string]string{"request_data": rec.RequestData, "response_data": rec.ResponseData} {
				if !strings.Contains(value, "sk-****…[truncated") {
					t.Errorf("%s = %q, want the key fragment masked as sk-**** at the cut", column, value)
				}
				if strings.Contains(value, "sk-"+key[3:4]) {
					t.Errorf("%s = %q, want no key character after sk-", column, value)
				}
			}
		})
	}

	t.Run("stream text budget", func(t *testing.T) {
		const maxText = 32
		p := newStreamParser(maxText, maxEventLine)
		content := strings.Repeat("c", maxText-len("sk-")-5) + key
		p.write([]byte(sseBody(chunk("deepseek-chat", content, "stop", usageJSON(10, 2, 0, 10)), "[DONE]")))
		p.finish()
		out := p.outcome(1 << 20)
		if !out.truncated {
			t.Errorf("truncated = false, want true for text over the budget")
		}
		if !strings.Contains(out.data, `sk-****"`) {
			t.Errorf("data = %s, want the content to end in sk-****", out.data)
		}
		if strings.Contains(out.data, key[3:8]) {
			t.Errorf("data = %s, want no key character after sk-", out.data)
		}
	})
}

// TestCallMasksKeyAtColumnCut puts a key across the character limit of
// message, user_id and error_message, which cut their text, so only a
// few of the key's characters would remain for MaskSecrets to miss.
func TestCallMasksKeyAtColumnCut(t *testing.T) {
	const key = "sk-COLUMNCUTKEY0123456789abcdwxyz"
	// across returns n-5 characters of padding, then the key, so the cut
	// at n characters keeps "sk-" and two key characters.
	across := func(n int) string {
		return strings.Repeat("m", n-5) + key
	}
	req := `{"model":"deepseek-chat","user":"` + across(maxFieldRunes) + `","messages":[{"role":"user","content":"` + across(maxMessageRunes) + `"}]}`
	resp := `{"error":{"message":"` + across(maxErrorRunes) + `","type":"invalid_request_error"}}`
	env := newMeterEnv(t, Options{})
	rec := env.run("/chat/completions", req, &response{status: 400, header: jsonHeader(), chunks: [][]byte{[]byte(resp)}}, End{})

	for _, column := range []struct {
		name, value string
		limit       int
	}{
		{"message", rec.Message, maxMessageRunes},
		{"user_id", rec.UserID, maxFieldRunes},
		{"error_message", rec.ErrorMessage, maxErrorRunes},
	} {
		if strings.Contains(column.value, key[3:5]) {
			t.Errorf("%s ends in %q, want no key character after sk-", column.name, column.value[max(len(column.value)-12, 0):])
		}
		if !strings.HasSuffix(column.value, "sk-**") {
			t.Errorf("%s ends in %q, want the masked fragment sk-**", column.name, column.value[max(len(column.value)-12, 0):])
		}
		if n := utf8.RuneCountInString(column.value); n > column.limit {
			t.Errorf("%s has %d characters, want at most %d", column.name, n, column.limit)
		}
	}
}
