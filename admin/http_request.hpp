#pragma once
// Reading the request line of an admin client's HTTP request. Pure: no I/O, so it is
// unit-tested and fuzzed (fuzz/admin_request_fuzz.cpp) apart from the socket code.

#include <string>
#include <string_view>

namespace sluice::admin {

struct RequestLine {
    std::string method;  // as sent: "GET", "HEAD", "POST", ...
    std::string path;    // the target without its query: "/status" for "/status?x=1"
};

// Parses the first line of a request head ("GET /status HTTP/1.1\r\nHost: ..."): a method,
// one space, a target, one space, the rest. Only that line is read, so a header never
// becomes part of the method or path. Returns "" and fills `out`, or what is wrong (the
// caller answers 400).
std::string parse_request_line(std::string_view head, RequestLine& out);

}  // namespace sluice::admin
