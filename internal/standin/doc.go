// Package standin is a deterministic stand-in for the DeepSeek API, used by
// tests, demos and benchmarks in place of the real service.
//
// A [Server] is an http.Handler and is safe for concurrent use. The same
// request (method, path, headers that matter and body bytes) always gets the
// same response bytes. Ids are derived from a hash of the request body, the
// created time is fixed and no random source is used.
//
// # Endpoints
//
// Every path is also served under the /v1 prefix.
//
//   - POST /chat/completions: chat, streamed (server-sent events) or not.
//   - POST /beta/completions: fill-in-the-middle (prompt, suffix); the response has
//     object "text_completion" and choices[].text.
//   - POST /anthropic/v1/messages: the Anthropic message format, with the key in
//     x-api-key (a Bearer Authorization header is accepted too).
//   - GET /models: the served models, see [Options.Models].
//   - GET /user/balance: the balance from [Options.Balances].
//
// An unknown path gets 404 and a known path with another method gets 405, both
// with the DeepSeek error envelope
// {"error":{"message":…,"type":…,"param":null,"code":…}}. Every endpoint
// requires a key starting with "sk-"; otherwise the response is 401 with type
// authentication_error, and the message repeats only the last four characters
// of the key. /anthropic errors use the same envelope.
//
// NOTE: whether DeepSeek's /anthropic endpoint sends errors in Anthropic's
// shape instead is unknown, so clients of that endpoint may see a difference.
//
// # Usage rule
//
// Token counts follow [EstimateTokens]: 0.3 token per ASCII byte and 0.6 token
// per other character (CJK and everything else), summed and rounded up, so ten
// ASCII letters are 3 tokens and two CJK characters are 2 tokens.
//
//   - prompt_tokens is [PromptTokens] of the prompt text: the contents of all
//     messages (string contents, and the text parts of array contents) joined
//     with no separator, in order; for /anthropic the system prompt comes first
//     and tool_result contents count too; for /beta/completions the prompt
//     followed by the suffix.
//   - prompt_cache_hit_tokens is [CacheHitTokens] of prompt_tokens (64 for
//     every whole 128 prompt tokens), prompt_cache_miss_tokens is the rest, and
//     prompt_tokens_details.cached_tokens repeats the hit count.
//   - completion_tokens is the sum of [EstimateTokens] of the reasoning text, of
//     the completion text and of a tool call's arguments string, each counted
//     separately. completion_tokens_details.reasoning_tokens, present only in
//     thinking mode, is the reasoning part. total_tokens is prompt plus
//     completion.
//   - For /anthropic: input_tokens is the miss count, cache_read_input_tokens
//     the hit count, cache_creation_input_tokens 0 and output_tokens the
//     completion tokens.
//
// Thinking mode is on for a model whose name contains "reasoner" and for a
// request with "thinking":{"type":"enabled"}; the reasoning text then comes
// first. max_tokens (or max_completion_tokens) caps reasoning plus text: the
// text is cut so that completion_tokens equals the cap exactly, and the finish
// reason is "length" ("max_tokens" for /anthropic).
//
// The completion text is a run of words drawn from a fixed vocabulary by a
// generator seeded with the last user message, so the same question gets the
// same words whether or not it is streamed. A last user message with Han
// characters gets Chinese words. The text has 12 words by default; the
// phrase "in N words" in the last user message or the fault key words=N sets
// N. The reasoning text has the same number of words. A request with tools
// gets a tool call for the first tool (or the one tool_choice names), unless
// tool_choice is "none" or the last message is a tool result. Its arguments
// fill up to four of the schema's properties in schema order.
//
// # Streams
//
// A streamed chat response is text/event-stream; charset=utf-8 with one
// "data: {chunk}" event per chunk, all with the same id: first a chunk whose
// delta has role "assistant", then reasoning and content a few words per
// chunk, each flushed at once. The last chunk carries the finish reason, the
// usage and the last piece of text; "data: [DONE]" follows. With
// stream_options.include_usage every earlier chunk has "usage":null, without
// it they have no usage key. No chunk with empty choices is sent. /anthropic
// streams message_start, content_block_start, content_block_delta and
// content_block_stop for each block, message_delta with the usage, and
// message_stop.
//
// # Faults
//
// The request header X-Standin-Fault ([FaultHeader]) selects faults, as a
// comma-separated list of key=value pairs such as "delay=200,status=503".
// Boolean keys take 1, 0, true or false; times are in milliseconds. An unknown
// key, a bad value, a repeated key or a key that does not apply to the response
// gets 400 with a message naming the key, so a test never silently runs
// another case.
//
//   - delay=MS: wait before anything else, the head included.
//   - reset=1: close the connection (a TCP reset where possible) before any
//     head. Only delay combines with it.
//   - status=400|401|402|422|429|500|503: respond with that status and the
//     DeepSeek error envelope; plain=1 with status=422 sends the old plain-text
//     body instead.
//   - empty=1: 200 with an empty JSON body, after the keep-alives if any.
//   - keepalive=N: N keep-alive units before the response body: blank lines before a
//     JSON body, ": keep-alive" comments on a stream. keepalive_delay=MS waits
//     before each keep-alive unit, leading and trailing.
//   - data_keepalive=N (streams): N keep-alives written as "data: " lines with
//     no JSON, after the comment keep-alives.
//   - trailing_keepalive=N (streams): after the last chunk, N keep-alive
//     comments and no terminal event; the connection is then held, sending
//     nothing more, for hang=MS or, without hang, until the client leaves or
//     [Server.Close] is called. The body then ends without "data: [DONE]"
//     (without message_stop on /anthropic).
//   - chunk_delay=MS (streams): wait before each data event but the first.
//   - cut_after=N: on a stream, drop the connection after N data events,
//     keep-alives not counted, or before the terminal event when the stream
//     has fewer; on a JSON body, drop it after N bytes, or at its end when it
//     is shorter. The client sees an unexpected EOF either way.
//   - words=N: the completion text has N words (0 to 1,000,000).
//   - size=BYTES: make the body about BYTES long, up to 16 GiB. A JSON response
//     gets a longer text and a stream gets more chunks. The text is generated
//     as it is written, so huge sizes do not fill memory. Not with words or
//     tool calls.
//   - gzip=1, deflate=1: compress the body (gzip, or zlib as HTTP's deflate
//     coding) and set Content-Encoding, flushing the compressor after every
//     event, but only when the request's Accept-Encoding allows that coding.
//   - bad_encoding=1: label the body Content-Encoding: gzip but send it
//     uncompressed, whatever Accept-Encoding says, as a broken relay does.
//   - usage_mismatch=1: report one prompt_cache_miss_tokens more than
//     prompt_tokens minus the hits, as some relays do (chat and FIM; the
//     /anthropic usage has no prompt_tokens to disagree with).
//   - multiline=1 (streams): split each data event after its first comma
//     into two data lines with a comment line between them.
//   - crlf=1, cr=1 (streams): end the event lines with CRLF or CR.
//   - nospace=1 (streams): write "data:{json}" and "event:name" with no space.
//   - split=1: write the body in pieces of 1 to 13 bytes, flushing after
//     each, so events arrive split across reads.
package standin
