#include "health/admin_server.hpp"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "common/log.hpp"
#include "health/status_report.hpp"

namespace sluice::health {
namespace {

constexpr size_t kMaxRequestHead = 8192;
constexpr int kTimeoutSeconds = 5;

void send_all(int fd, const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
        const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;  // the client went away or stalled past the send timeout
        sent += static_cast<size_t>(n);
    }
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

}  // namespace

AdminServer::AdminServer(int listen_fd, const Config& config, const SharedTable& table)
    : listen_fd_(listen_fd), config_(config), table_(table) {}

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
        std::thread([this, client] {
            serve(client);
            ::close(client);
            clients_.fetch_sub(1);
        }).detach();
    }
}

void AdminServer::serve(int client) {
    const timeval timeout{kTimeoutSeconds, 0};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string head;
    char buffer[2048];
    while (head.find("\r\n\r\n") == std::string::npos) {
        if (head.size() > kMaxRequestHead) {
            return send_all(client, response(431, "Request Header Fields Too Large",
                                             "text/plain", "request head too large\n", false));
        }
        const ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
        if (n <= 0) return;  // closed, reset, or silent past the timeout
        head.append(buffer, static_cast<size_t>(n));
    }
    const auto sp1 = head.find(' ');
    const auto sp2 = sp1 == std::string::npos ? sp1 : head.find(' ', sp1 + 1);
    if (sp2 == std::string::npos)
        return send_all(client, response(400, "Bad Request", "text/plain", "bad request\n", false));
    const std::string method = head.substr(0, sp1);
    std::string path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    const bool head_only = method == "HEAD";
    if (method != "GET" && !head_only) {
        return send_all(client, response(405, "Method Not Allowed", "text/plain",
                                         "the admin listener is read-only\n", false));
    }
    const StatusSnapshot snapshot = take_snapshot(config_, table_);
    if (path == "/metrics") {
        send_all(client, response(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                                  render_prometheus(snapshot), head_only));
    } else if (path == "/status") {
        send_all(client,
                 response(200, "OK", "application/json", render_json(snapshot), head_only));
    } else if (path == "/") {
        send_all(client, response(200, "OK", "text/html; charset=utf-8", render_html(snapshot),
                                  head_only));
    } else {
        send_all(client, response(404, "Not Found", "text/plain",
                                  "try /, /status or /metrics\n", head_only));
    }
}

}  // namespace sluice::health
