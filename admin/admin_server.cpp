#include "admin/admin_server.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include "admin/http_request.hpp"
#include "admin/status_report.hpp"
#include "common/log.hpp"
#include "common/net.hpp"

namespace sluice::admin {
namespace {

constexpr size_t kMaxRequestHead = 8192;
constexpr int kTimeoutSeconds = 5;

// Sends a whole reply within kTimeoutSeconds. A client that went away or stalls past it
// just loses the reply: there is no one to tell.
void send_all(int fd, const std::string& data) {
    const net::Deadline deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(kTimeoutSeconds);
    (void)net::send_all(fd, data, deadline);
}

std::string response(int status, const char* reason, const char* type, const std::string& body,
                     bool head_only) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                      "\r\nContent-Type: " + type +
                      "\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    if (!head_only) out += body;
    return out;
}

bool is_loopback(const net::Endpoint& e) {
    if (e.family() == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&e.storage);
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (e.family() == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&e.storage);
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
    }
    return false;
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

}  // namespace

std::string AdminServer::set_draining(const std::string& path, bool from_loopback) {
    if (!from_loopback)
        return response(403, "Forbidden", "text/plain", "only from loopback\n", false);
    // /targets/NAME/drain or /targets/NAME/enable
    const std::string rest = path.substr(std::string("/targets/").size());
    const auto slash = rest.rfind('/');
    const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (action != "drain" && action != "enable")
        return response(404, "Not Found", "text/plain", "POST /targets/NAME/drain or /enable\n",
                        false);
    const std::string name = url_decode(rest.substr(0, slash));
    for (size_t t = 0; t < config_.targets.size(); ++t) {
        if (config_.targets[t].address != name) continue;
        const bool drain = action == "drain";
        table_.groups[t].draining.store(drain ? 1 : 0);
        LOG_NOTICE("admin: target %s %s", name.c_str(),
                   drain ? "draining: no new connections" : "enabled");
        return response(200, "OK", "text/plain", name + (drain ? " draining\n" : " enabled\n"),
                        false);
    }
    return response(404, "Not Found", "text/plain", "no target \"" + name + "\"\n", false);
}

AdminServer::AdminServer(int listen_fd, const Config& config, SharedTable& table,
                         const LoadLedger& ledger)
    : listen_fd_(listen_fd), config_(config), table_(table), ledger_(ledger) {}

void AdminServer::start() {
    std::thread([this] { accept_loop(); }).detach();
}

void AdminServer::accept_loop() {
    for (;;) {
        const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) {
            if (errno != EINTR && errno != ECONNABORTED)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));  // EMFILE and co.
            continue;
        }
        if (clients_.fetch_add(1) >= kMaxClients) {
            clients_.fetch_sub(1);
            ::close(client);  // too many at once: the newest waits no slot
            continue;
        }
        try {
            std::thread([this, client] {
                serve(client);
                ::close(client);
                clients_.fetch_sub(1);
            }).detach();
        } catch (const std::system_error&) {  // out of threads: refuse this client only
            ::close(client);
            clients_.fetch_sub(1);
        }
    }
}

void AdminServer::serve(int client) {
    // The whole request head within kTimeoutSeconds, however it is sliced: a client that
    // trickles a byte at a time cannot hold one of the kMaxClients slots for longer.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kTimeoutSeconds);
    std::string head;
    char buffer[2048];
    while (head.find("\r\n\r\n") == std::string::npos) {
        if (head.size() > kMaxRequestHead) {
            return send_all(client, response(431, "Request Header Fields Too Large", "text/plain",
                                             "request head too large\n", false));
        }
        if (net::wait_ready(client, POLLIN, deadline) != 0) return;  // silent past the deadline
        const ssize_t n = ::recv(client, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;  // closed or reset
        if (n < 0) continue;
        head.append(buffer, static_cast<size_t>(n));
    }
    RequestLine request;
    if (!parse_request_line(head, request).empty())
        return send_all(client, response(400, "Bad Request", "text/plain", "bad request\n", false));
    const std::string& method = request.method;
    const std::string& path = request.path;
    const bool head_only = method == "HEAD";
    if (method == "POST" && path.rfind("/targets/", 0) == 0) {
        const net::Endpoint peer = net::peer_endpoint(client);
        return send_all(client, set_draining(path, is_loopback(peer)));
    }
    if (method != "GET" && !head_only) {
        return send_all(client, response(405, "Method Not Allowed", "text/plain",
                                         "GET /, /status or /metrics; POST "
                                         "/targets/NAME/drain or /enable\n",
                                         false));
    }
    const StatusSnapshot snapshot = take_snapshot(config_, table_, ledger_);
    if (path == "/metrics") {
        send_all(client, response(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                                  render_prometheus(snapshot), head_only));
    } else if (path == "/status") {
        send_all(client, response(200, "OK", "application/json", render_json(snapshot), head_only));
    } else if (path == "/") {
        send_all(client,
                 response(200, "OK", "text/html; charset=utf-8", render_html(snapshot), head_only));
    } else {
        send_all(client, response(404, "Not Found", "text/plain", "try /, /status or /metrics\n",
                                  head_only));
    }
}

}  // namespace sluice::admin
