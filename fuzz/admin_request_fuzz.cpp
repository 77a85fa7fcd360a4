// The admin listener's request-head parser on any bytes: no crash or undefined behaviour,
// the same verdict every time, and what it accepts is what the head says: a token method,
// an origin-form path without its query, and header values without line breaks.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "admin/request.hpp"
#include "fuzz/fuzz_require.hpp"

namespace {

bool clean_value(const std::optional<std::string>& value) {
    return !value || value->find_first_of("\r\n") == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view head(reinterpret_cast<const char*>(data), size);
    sluice::admin::AdminRequest request;
    const std::string error = sluice::admin::parse_request_head(head, request);

    sluice::admin::AdminRequest again;
    FUZZ_REQUIRE(sluice::admin::parse_request_head(head, again) == error, error);
    if (!error.empty()) return 0;
    FUZZ_REQUIRE(again.method == request.method && again.path == request.path, request.path);

    // "METHOD /path[?query] HTTP/1.x" on the first line.
    FUZZ_REQUIRE(!request.method.empty(), "empty method");
    FUZZ_REQUIRE(request.method.find_first_of(" \r\n") == std::string::npos, request.method);
    FUZZ_REQUIRE(!request.path.empty() && request.path.front() == '/', request.path);
    FUZZ_REQUIRE(request.path.find_first_of(" \r\n?") == std::string::npos, request.path);
    FUZZ_REQUIRE(head.substr(0, request.method.size()) == request.method, request.method);
    FUZZ_REQUIRE(head.substr(request.method.size(), 1) == " ", request.method);
    FUZZ_REQUIRE(head.substr(request.method.size() + 1, request.path.size()) == request.path,
                 request.path);
    FUZZ_REQUIRE(request.minor_version == 0 || request.minor_version == 1, request.path);
    FUZZ_REQUIRE(clean_value(request.host) && clean_value(request.origin) &&
                     clean_value(request.sec_fetch_site) && clean_value(request.authorization),
                 "a header value with a line break");
    return 0;
}
