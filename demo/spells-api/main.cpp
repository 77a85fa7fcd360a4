// spells-api: a tiny in-memory "Harry Potter spells" HTTP API, the demo and test backend
// behind sluice. cpp-httplib speaks HTTP; this file holds the routes, the flags and the
// start-up. Every response names the instance in X-Instance, so that a client can tell which
// backend answered. One thread per connection; a connection stays open as long as the
// client wants (HTTP/1.1 keep-alive, 60 s idle).
//
// Where httplib 0.11.4 differs from the hand-written server this replaced (nothing that
// sluice's tests, scripts or walk-throughs send): requests pipelined behind the first one in
// a read are lost (yhirose/cpp-httplib#1271); it compresses and serves ranges when a client
// asks; it accepts chunked bodies; it reads a body over 1 MiB before its 413; a malformed
// request gets 400 (or 414) and the connection stays open; an unknown method is 400, not
// 405; "Connection" values compare case-sensitively.

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <boost/program_options.hpp>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace {

namespace po = boost::program_options;

constexpr std::size_t kMaxBodyBytes = 1024 * 1024;  // a bigger declared body gets 413
constexpr time_t kIdleTimeoutSeconds = 60;          // waiting for a request or its bytes
constexpr time_t kSendTimeoutSeconds = 30;

struct Options {
    std::uint16_t port = 0;
    std::string name;
    std::string host;
};

// Parses the command line. Returns the options, or nullopt with `exit_code` set (0 after
// --help, 2 after a usage error, already reported).
std::optional<Options> parse_options(int argc, char** argv, int& exit_code) {
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
    exit_code = 2;
    if (port < 1 || port > 65535) {
        std::cerr << "spells-api: --port must be in 1..65535\n";
        return std::nullopt;
    }
    // The name goes verbatim into a header line: refuse anything that could break the
    // response framing.
    for (char c : opts.name) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            std::cerr << "spells-api: --name must not contain control characters\n";
            return std::nullopt;
        }
    }
    opts.port = static_cast<std::uint16_t>(port);
    return opts;
}

// The in-memory spell list. Each spell is kept as the raw JSON object text a client posted,
// so the API round-trips exactly what it was given.
class SpellStore {
public:
    // All spells as one JSON array, consistent under a concurrent add().
    std::string to_json() const {
        std::lock_guard lock(mu_);
        std::string out = "[";
        for (std::size_t i = 0; i < spells_.size(); ++i) out += (i != 0 ? ", " : "") + spells_[i];
        return out + "]";
    }

    void add(std::string spell) {
        std::lock_guard lock(mu_);
        spells_.push_back(std::move(spell));
    }

private:
    mutable std::mutex mu_;
    std::vector<std::string> spells_{
        R"({"id": 1, "name": "Expelliarmus", "description": "Disarming Charm"})",
        R"({"id": 2, "name": "Lumos", "description": "Wand-Lighting Charm"})"};
};

// The methods a served path allows (its Allow header), or nullptr for a path not served.
const char* allowed_methods(const std::string& path) {
    if (path == "/healthz") return "GET";
    if (path == "/api/spells") return "GET, POST";
    return nullptr;
}

const char* reason_phrase(int status) {
    switch (status) {
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 413: return "Payload Too Large";
        case 414: return "URI Too Long";
        case 416: return "Range Not Satisfiable";
        default: return "Internal Server Error";
    }
}

std::string_view trim_whitespace(std::string_view s) {
    constexpr std::string_view kSpace = " \t\r\n";
    const std::size_t begin = s.find_first_not_of(kSpace);
    if (begin == std::string_view::npos) return {};
    return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

void add_routes(httplib::Server& server, SpellStore& store) {
    server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("OK", "text/plain");
    });
    server.Get("/api/spells", [&store](const httplib::Request&, httplib::Response& res) {
        res.set_content(store.to_json(), "application/json");
    });
    server.Post("/api/spells", [&store](const httplib::Request& req, httplib::Response& res) {
        // Deliberately shallow validation: the demo only needs an object.
        const std::string_view spell = trim_whitespace(req.body);
        if (spell.size() < 2 || spell.front() != '{' || spell.back() != '}') {
            res.status = 400;
            res.set_content(R"({"error": "body must be a JSON object"})", "application/json");
            return;
        }
        store.add(std::string(spell));
        res.status = 201;
        res.set_content(std::string(spell), "application/json");
    });
    // httplib would answer HEAD like GET; this API has never served it. A path not served
    // stays 404, as the error handler below sees it.
    server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
        if (req.method != "HEAD") return httplib::Server::HandlerResponse::Unhandled;
        res.status = 404;
        return httplib::Server::HandlerResponse::Handled;
    });
    // A served path asked with another method is 405 with Allow, not httplib's 404; an error
    // without a body of its own says its reason phrase.
    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        const char* allow = allowed_methods(req.path);
        if (res.status == 404 && allow != nullptr) {
            res.status = 405;
            res.set_header("Allow", allow);
        }
        if (res.body.empty()) res.set_content(reason_phrase(res.status), "text/plain");
    });
}

// Headers every response gets, errors from httplib's own parser included.
void add_common_headers(httplib::Server& server, const std::string& name) {
    server.set_post_routing_handler([&name](const httplib::Request& req, httplib::Response& res) {
        res.set_header("X-Instance", name);
        res.headers.erase("Keep-Alive");  // httplib's hint; not part of this API's replies
        // HTTP/1.0 closes unless told otherwise, so say which (httplib keeps a 1.0
        // connection open for exactly "Connection: Keep-Alive").
        if (req.version == "HTTP/1.0" && !res.has_header("Connection")) {
            const bool kept = req.get_header_value("Connection") == "Keep-Alive";
            res.set_header("Connection", kept ? "keep-alive" : "close");
        }
    });
}

// One detached thread per connection: a connection held open never makes another wait
// (httplib's default pool has 8 threads, and an open connection keeps its thread).
class ThreadPerConnection : public httplib::TaskQueue {
public:
    void enqueue(std::function<void()> serve) override {
        try {
            std::thread(serve).detach();
        } catch (const std::system_error& e) {
            std::cerr << "spells-api: cannot start thread: " << e.what() << '\n';
            serve();  // on the accepting thread, rather than leak the connection's socket
        }
    }
    void shutdown() override {}
};

// Binds host:port with SO_REUSEADDR (tests restart an instance on its port at once) but not
// httplib's default SO_REUSEPORT (a second instance on a taken port must fail), and a
// listen backlog of SOMAXCONN instead of httplib's 5, which a connect flood overruns.
bool bind_server(httplib::Server& server, const Options& opts) {
    int listen_fd = -1;
    server.set_socket_options([&listen_fd](socket_t fd) {
        const int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        listen_fd = fd;
    });
    // listen() again on a listening socket only changes its backlog.
    return server.bind_to_port(opts.host, opts.port) && ::listen(listen_fd, SOMAXCONN) == 0;
}

bool is_ip_address(const std::string& host) {
    in6_addr addr{};
    return ::inet_pton(AF_INET, host.c_str(), &addr) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), &addr) == 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);  // a vanished client must not kill us

    int exit_code = 0;
    const std::optional<Options> opts = parse_options(argc, argv, exit_code);
    if (!opts) return exit_code;

    // Block SIGINT/SIGTERM before any thread exists so every thread inherits the mask and
    // the main thread alone receives them via sigwait.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    if (!is_ip_address(opts->host)) {
        std::cerr << "spells-api: not an IPv4 or IPv6 address: " << opts->host << '\n';
        return 1;
    }
    // The server, the store and the name live in main's frame, which never unwinds while
    // connection threads run: we leave via _Exit below.
    SpellStore store;
    httplib::Server server;
    server.new_task_queue = [] { return new ThreadPerConnection; };
    server.set_read_timeout(kIdleTimeoutSeconds)
        .set_keep_alive_timeout(kIdleTimeoutSeconds)
        .set_keep_alive_max_count(std::numeric_limits<std::size_t>::max())
        .set_write_timeout(kSendTimeoutSeconds)
        .set_payload_max_length(kMaxBodyBytes)
        .set_tcp_nodelay(true);  // accepted sockets inherit it
    add_routes(server, store);
    add_common_headers(server, opts->name);
    if (!bind_server(server, *opts)) {
        std::cerr << "spells-api: cannot listen: " << std::strerror(errno) << '\n';
        return 1;
    }
    const bool v6 = opts->host.find(':') != std::string::npos;
    std::cout << "spells-api " << opts->name << " listening on " << (v6 ? "[" : "") << opts->host
              << (v6 ? "]" : "") << ':' << opts->port << std::endl;

    std::thread([&server] {
        server.listen_after_bind();
        // httplib gives up on an accept() error other than EMFILE, EINTR and EAGAIN.
        std::perror("spells-api: accept");
        std::_Exit(1);
    }).detach();

    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fflush(nullptr);
    // Skip static destructors: detached threads may still be using state.
    std::_Exit(0);
}
