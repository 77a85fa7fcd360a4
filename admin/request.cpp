#include "admin/request.hpp"

#include <array>
#include <cctype>
#include <utility>

namespace sluice::admin {
namespace {

// RFC 9110 5.6.2: the characters of a token (method, header name).
bool is_token_char(char c) {
    static constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || kSymbols.find(c) != kSymbols.npos;
}

bool is_token(std::string_view text) {
    if (text.empty()) return false;
    for (const char c : text) {
        if (!is_token_char(c)) return false;
    }
    return true;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

std::string_view trim_spaces(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// "METHOD SP origin-form SP HTTP/1.x".
std::string parse_request_line(std::string_view line, AdminRequest& out) {
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == line.npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == line.npos || line.find(' ', sp2 + 1) != line.npos)
        return "the request line is not \"METHOD /path HTTP/1.1\"";
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method)) return "the method is not a token";
    if (target.empty() || target.front() != '/') return "the request target is not a /path";
    for (const char c : target) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= ' ' || u >= 0x7f) return "the request target has a control or non-ASCII byte";
    }
    if (version == "HTTP/1.1")
        out.minor_version = 1;
    else if (version == "HTTP/1.0")
        out.minor_version = 0;
    else
        return "the version is not HTTP/1.0 or HTTP/1.1";
    out.method = std::string(method);
    out.path = std::string(target.substr(0, target.find_first_of("?#")));
    return {};
}

// "name: value"; keeps the value if the name is one of the four the checks read.
std::string parse_header_line(std::string_view line, AdminRequest& out) {
    if (line.front() == ' ' || line.front() == '\t') return "a folded header line";
    const size_t colon = line.find(':');
    if (colon == line.npos) return "a header line without a colon";
    const std::string_view name = line.substr(0, colon);
    if (!is_token(name)) return "a header name that is not a token";
    const std::string_view value = trim_spaces(line.substr(colon + 1));
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < ' ' && c != '\t') || u == 0x7f) return "a control character in a header value";
    }
    const std::array<std::pair<std::string_view, std::optional<std::string>*>, 4> kept = {{
        {"Host", &out.host},
        {"Origin", &out.origin},
        {"Sec-Fetch-Site", &out.sec_fetch_site},
        {"Authorization", &out.authorization},
    }};
    for (const auto& [kept_name, field] : kept) {
        if (!equals_ignoring_case(name, kept_name)) continue;
        if (field->has_value()) return "more than one " + std::string(kept_name) + " header";
        *field = std::string(value);
    }
    return {};
}

}  // namespace

std::string parse_request_head(std::string_view head, AdminRequest& out) {
    out = AdminRequest{};
    bool first = true;
    while (!head.empty()) {
        const size_t eol = head.find("\r\n");
        const std::string_view line = head.substr(0, eol);
        head.remove_prefix(eol == head.npos ? head.size() : eol + 2);
        if (line.find_first_of("\r\n") != line.npos) return "a bare CR or LF in the head";
        if (line.empty()) {
            if (first) return "an empty request line";
            break;  // the end of the head; what follows is a body the admin does not read
        }
        const std::string error =
            first ? parse_request_line(line, out) : parse_header_line(line, out);
        if (!error.empty()) return error;
        first = false;
    }
    if (first) return "an empty request";
    if (out.minor_version == 1 && !out.host) return "an HTTP/1.1 request without a Host header";
    return {};
}

}  // namespace sluice::admin
