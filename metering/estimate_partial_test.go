package metering

import "testing"

// A non-streamed body cut midway still carries the text generated so far;
// its completion is estimated from that text rather than counted as zero.
func TestPartialAnswerTokens(t *testing.T) {
	cases := []struct {
		name string
		body string
		want int64
	}{
		{"cut inside content", `{"id":"x","choices":[{"message":{"role":"assistant","content":"abcdefghij`, 3},
		{"content closed then cut", `{"choices":[{"message":{"content":"abcdefghij"},"finish`, 3},
		{"escaped quote kept inside", `{"choices":[{"message":{"content":"ab\"cdefgh`, 3},
		{"reasoning and content", `{"choices":[{"message":{"reasoning_content":"abcdefghij","content":"abcdefghij`, 6},
		{"chinese", `{"choices":[{"message":{"content":"你好世界你`, 3},
		{"nothing generated", `{"id":"x","choices":[`, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := partialAnswerTokens([]byte(c.body)); got != c.want {
				t.Errorf("partialAnswerTokens(%q) = %d, want %d", c.body, got, c.want)
			}
		})
	}
}
