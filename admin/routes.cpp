#include "admin/routes.hpp"

#include <cctype>
#include <string>

#include "admin/status_report.hpp"
#include "common/log.hpp"

namespace sluice::admin {
namespace {

const char* reason_phrase(int status) {
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 421: return "Misdirected Request";
        case 431: return "Request Header Fields Too Large";
        default: return "Error";
    }
}

std::string response(int status, const char* type, const std::string& body, bool head_only,
                     const std::string& extra_headers = "") {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
                      "\r\nContent-Type: " + type +
                      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
                      extra_headers + "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
    if (!head_only) out += body;
    return out;
}

// %XX escapes in a path segment ("%5B%3A%3A1%5D%3A80" for "[::1]:80").
std::string url_decode(const std::string& text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() &&
            std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
            out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

// Request text for a log line: printable ASCII only, at most 200 bytes, so a client cannot
// forge lines or flood one.
std::string printable(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, 200)) {
        const auto u = static_cast<unsigned char>(c);
        out += u >= ' ' && u < 0x7f ? c : '?';
    }
    return out;
}

}  // namespace

std::string plain_reply(int status, const std::string& body) {
    return response(status, "text/plain", body, false);
}

AdminRoutes::AdminRoutes(const Config& config, SharedTable& table, const LoadLedger& ledger)
    : config_(config),
      table_(table),
      ledger_(ledger),
      access_{config.admin_allow_remote, config.admin_token} {}

std::string AdminRoutes::reply(std::string_view head, const net::Endpoint& peer) {
    AdminRequest request;
    const std::string error = parse_request_head(head, request);
    if (!error.empty()) return response(400, "text/plain", "bad request: " + error + "\n", false);
    const Refusal refusal = check_access(request, is_loopback(peer), access_);
    if (refusal.status == 0) return route(request);
    LOG_WARN("admin: refused %s %s from %s: %d %s", printable(request.method).c_str(),
             printable(request.path).c_str(), peer.to_string().c_str(), refusal.status,
             printable(refusal.why).c_str());
    std::string challenge;
    if (refusal.status == 401)
        challenge = std::string("WWW-Authenticate: Bearer realm=\"sluice admin\"") +
                    (refusal.bad_token ? ", error=\"invalid_token\"" : "") + "\r\n";
    return response(refusal.status, "text/plain", refusal.why + "\n", request.method == "HEAD",
                    challenge);
}

std::string AdminRoutes::route(const AdminRequest& request) {
    const std::string& path = request.path;
    const bool head_only = request.method == "HEAD";
    if (request.method == "POST" && path.rfind("/targets/", 0) == 0) return set_draining(path);
    if (request.method != "GET" && !head_only) {
        return response(405, "text/plain",
                        "GET /, /status or /metrics; POST /targets/NAME/drain or /enable\n", false,
                        "Allow: GET, HEAD, POST\r\n");
    }
    const StatusSnapshot snapshot = take_snapshot(config_, table_, ledger_);
    if (path == "/metrics")
        return response(200, "text/plain; version=0.0.4; charset=utf-8",
                        render_prometheus(snapshot), head_only);
    if (path == "/status")
        return response(200, "application/json", render_json(snapshot), head_only);
    if (path == "/")
        return response(200, "text/html; charset=utf-8", render_html(snapshot), head_only);
    return response(404, "text/plain", "try /, /status or /metrics\n", head_only);
}

std::string AdminRoutes::set_draining(const std::string& path) {
    // /targets/NAME/drain or /targets/NAME/enable
    const std::string rest = path.substr(std::string("/targets/").size());
    const auto slash = rest.rfind('/');
    const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (action != "drain" && action != "enable")
        return response(404, "text/plain", "POST /targets/NAME/drain or /enable\n", false);
    const std::string name = url_decode(rest.substr(0, slash));
    for (size_t t = 0; t < config_.targets.size(); ++t) {
        if (config_.targets[t].address != name) continue;
        const bool drain = action == "drain";
        table_.groups[t].draining.store(drain ? 1 : 0);
        LOG_NOTICE("admin: target %s %s", printable(name).c_str(),
                   drain ? "draining: no new connections" : "enabled");
        return response(200, "text/plain", name + (drain ? " draining\n" : " enabled\n"), false);
    }
    return response(404, "text/plain", "no target \"" + name + "\"\n", false);
}

}  // namespace sluice::admin
