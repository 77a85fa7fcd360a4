// spells-api: a tiny in-memory "Harry Potter spells" HTTP API used as a demo
// and test backend behind sluice. One thread per connection, keep-alive
// supported, every response tagged with X-Instance so tests can tell which
// backend answered.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "http.hpp"

namespace {

namespace po = boost::program_options;
using spells::Connection;
using spells::ReadStatus;
using spells::Request;
using spells::Response;
using spells::UniqueFd;

struct Options {
    std::uint16_t port = 0;
    std::string name;
    std::string host;
};

// Parses the command line. Returns the options, or nullopt with `exit_code`
// set (0 after --help, 2 after a usage error, already reported).
std::optional<Options> ParseOptions(int argc, char** argv, int& exit_code) {
    int port = 0;
    Options opts;
    po::options_description desc("Usage: spells-api --port N [options]");
    desc.add_options()("help", "show this help")("port,p", po::value<int>(&port)->required(),
                                                 "TCP port to listen on (1-65535)")(
        "name,n", po::value<std::string>(&opts.name)->default_value("spells-api"),
        "instance name, sent as X-Instance")(
        "host,H", po::value<std::string>(&opts.host)->default_value("0.0.0.0"),
        "IPv4 or IPv6 address to bind");
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        if (vm.count("help") != 0) {
            std::cout << desc << '\n';
            exit_code = 0;
            return std::nullopt;
        }
        po::notify(vm);  // enforces --port
    } catch (const po::error& e) {
        std::cerr << "spells-api: " << e.what() << "\n" << desc << '\n';
        exit_code = 2;
        return std::nullopt;
    }
    if (port < 1 || port > 65535) {
        std::cerr << "spells-api: --port must be in 1..65535\n";
        exit_code = 2;
        return std::nullopt;
    }
    // The name goes verbatim into a header line: refuse anything that could
    // break the response framing.
    for (char c : opts.name) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            std::cerr << "spells-api: --name must not contain control characters\n";
            exit_code = 2;
            return std::nullopt;
        }
    }
    opts.port = static_cast<std::uint16_t>(port);
    return opts;
}

// The in-memory spell list. Each spell is kept as the raw JSON object text a
// client posted, so the API round-trips exactly what it was given.
class SpellStore {
public:
    SpellStore()
        : spells_{R"({"id": 1, "name": "Expelliarmus", "description": "Disarming Charm"})",
                  R"({"id": 2, "name": "Lumos", "description": "Wand-Lighting Charm"})"} {}

    // Returns all spells as one JSON array, consistent under concurrent Add.
    std::string ToJson() const {
        std::lock_guard lock(mu_);
        std::string out = "[";
        for (size_t i = 0; i < spells_.size(); ++i) {
            if (i != 0) out += ", ";
            out += spells_[i];
        }
        out += "]";
        return out;
    }

    void Add(std::string spell) {
        std::lock_guard lock(mu_);
        spells_.push_back(std::move(spell));
    }

private:
    mutable std::mutex mu_;
    std::vector<std::string> spells_;
};

Response JsonResponse(int status, std::string body) {
    Response resp;
    resp.status = status;
    resp.content_type = "application/json";
    resp.body = std::move(body);
    return resp;
}

Response MethodNotAllowed(std::string allow) {
    Response resp = spells::TextResponse(405);
    resp.extra_headers.emplace_back("Allow", std::move(allow));
    return resp;
}

// Maps one request to its response. Never throws on client input.
Response Route(const Request& req, SpellStore& store) {
    if (req.path == "/healthz") {
        if (req.method != "GET") return MethodNotAllowed("GET");
        return spells::TextResponse(200);  // body "OK"
    }
    if (req.path == "/api/spells") {
        if (req.method == "GET") return JsonResponse(200, store.ToJson());
        if (req.method != "POST") return MethodNotAllowed("GET, POST");
        // Deliberately shallow validation: the demo only needs an object.
        std::string_view spell = spells::TrimWhitespace(req.body);
        if (spell.size() < 2 || spell.front() != '{' || spell.back() != '}') {
            return JsonResponse(400, R"({"error": "body must be a JSON object"})");
        }
        store.Add(std::string(spell));
        return JsonResponse(201, std::string(spell));
    }
    return spells::TextResponse(404);
}

// Serves requests on one connection until the client or an error closes it.
// Runs on its own detached thread, so it must not let exceptions escape.
void ServeConnection(UniqueFd fd, const std::string& name, SpellStore& store) {
    try {
        Connection conn(std::move(fd));
        for (;;) {
            spells::ReadResult in = conn.ReadRequest();
            if (in.status == ReadStatus::kClosed) return;
            if (in.status == ReadStatus::kError) {
                conn.Send(in.error, name, /*keep_alive=*/false, /*http10=*/false);
                conn.LingeringClose();
                return;
            }
            const Request& req = in.request;
            Response resp = Route(req, store);
            if (!conn.Send(resp, name, req.keep_alive, req.http10) || !req.keep_alive) return;
        }
    } catch (const std::exception& e) {
        std::cerr << "spells-api: connection error: " << e.what() << '\n';
    }
}

// Creates a listening socket on host:port. SO_REUSEADDR lets tests restart
// the server on the same port immediately. Returns an invalid fd and fills
// `error` on failure.
UniqueFd Listen(const std::string& host, std::uint16_t port, std::string& error) {
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        addr_len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        addr_len = sizeof(sockaddr_in6);
    } else {
        error = "not an IPv4 or IPv6 address: " + host;
        return UniqueFd();
    }
    UniqueFd fd(::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    if (!fd.Valid() || ::setsockopt(fd.Get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        ::bind(fd.Get(), reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 ||
        ::listen(fd.Get(), SOMAXCONN) != 0) {
        error = std::string("cannot listen: ") + std::strerror(errno);
        return UniqueFd();
    }
    return fd;
}

// Accepts connections forever, one detached thread each. Transient errors
// (aborted handshakes, fd exhaustion) are survived; anything else is fatal.
[[noreturn]] void AcceptLoop(int listen_fd, const std::string& name, SpellStore& store) {
    for (;;) {
        int client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) {
            switch (errno) {
                case EINTR:
                case ECONNABORTED:
                case EPROTO:
                case EAGAIN: continue;
                case EMFILE:
                case ENFILE:
                case ENOBUFS:
                case ENOMEM: std::this_thread::sleep_for(std::chrono::milliseconds(50)); continue;
                default: std::perror("spells-api: accept"); std::_Exit(1);
            }
        }
        try {
            // If thread creation fails the fd is closed along with the
            // thread's argument copy.
            std::thread(ServeConnection, UniqueFd(client), std::cref(name), std::ref(store))
                .detach();
        } catch (const std::system_error& e) {
            std::cerr << "spells-api: cannot start thread: " << e.what() << '\n';
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);  // a vanished client must not kill us

    int exit_code = 0;
    std::optional<Options> opts = ParseOptions(argc, argv, exit_code);
    if (!opts) return exit_code;

    // Block SIGINT/SIGTERM before any thread exists so every thread inherits
    // the mask and the main thread alone receives them via sigwait.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    std::string error;
    UniqueFd listener = Listen(opts->host, opts->port, error);
    if (!listener.Valid()) {
        std::cerr << "spells-api: " << error << '\n';
        return 1;
    }
    const bool v6 = opts->host.find(':') != std::string::npos;
    std::cout << "spells-api " << opts->name << " listening on " << (v6 ? "[" : "") << opts->host
              << (v6 ? "]" : "") << ':' << opts->port << std::endl;

    // The store and name live in main's frame, which never unwinds while
    // connection threads run: we leave via _Exit below.
    SpellStore store;
    std::thread(AcceptLoop, listener.Get(), std::cref(opts->name), std::ref(store)).detach();

    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fflush(nullptr);
    // Skip static destructors: detached threads may still be using state.
    std::_Exit(0);
}
