#pragma once
// The admin listener's HTTP request head, parsed: a pure function from bytes to a struct (no
// sockets, no state), so the parser can be unit-tested and fuzzed on its own. Only what the
// admin needs is kept: the method, the path and the four headers its access checks read.

#include <optional>
#include <string>
#include <string_view>

namespace sluice::admin {

struct AdminRequest {
    std::string method;     // as sent ("GET", "POST"); methods are case-sensitive
    std::string path;       // the origin-form target without its query: "/targets/x%3A1/drain"
    int minor_version = 1;  // HTTP/1.0 or HTTP/1.1
    // The headers the access checks read, values without surrounding spaces; absent when the
    // request did not send them. Each may appear once: a repeated one is a bad request.
    std::optional<std::string> host, origin, sec_fetch_site, authorization;
};

// Parses a request head: the request line and the header lines, each ended by CRLF, up to
// and including the empty line (a head without it is read as if it ended there). Returns ""
// and fills `out`, or returns what is wrong (the reply is then 400). Strict on purpose:
// "METHOD SP /path SP HTTP/1.x", header names made of token characters, no folded lines, no
// control characters in values, and an HTTP/1.1 request must name its Host (RFC 9112 3.2).
std::string parse_request_head(std::string_view head, AdminRequest& out);

}  // namespace sluice::admin
