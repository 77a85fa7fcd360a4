// Who may use the admin listener, over real sockets: Host (DNS rebinding), cross-site POSTs
// (a page in a browser on the same host, headless Chromium included), the bearer token and
// admin_allow_remote; and clients that dribble bytes to hold every slot, which must not keep
// a scrape of /metrics out.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

const std::string kToken = "e2e-admin-token-6f3a9c1d2b7e4f50";

class AdminAccessTest : public SluiceTest {
protected:
    // One backend, sluice with an admin listener and `extra` top-level keys; waits until the
    // admin answers (with the token when one is configured).
    void start(const std::string& extra) {
        start_backends(1);
        with_admin_ = true;
        extra_top_ = extra;
        start_sluice(1);
        if (HasFatalFailure()) return;
        ASSERT_NE(admin_port_, 0) << sluice_->log();
        ASSERT_TRUE(wait_until(
            [&] {
                return status_of(request("GET", "/metrics",
                                         "Authorization: Bearer " + kToken + "\r\n")) == 200;
            },
            kPatience))
            << sluice_->log();
    }
    std::string token_file(const std::string& token) {
        return dir_.write("admin-token", token + "\n");
    }
    // `method path` with Host: 127.0.0.1:ADMIN and `headers` (each ending in CRLF).
    std::string request(const std::string& method, const std::string& path,
                        const std::string& headers = "") {
        return http_exchange(admin_port_, method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                                              std::to_string(admin_port_) + "\r\n" + headers +
                                              "Connection: close\r\n\r\n");
    }
    std::string target() const { return "127.0.0.1:" + std::to_string(backends_[0].port); }
    std::string drain_path() const { return "/targets/" + target() + "/drain"; }
    // The target's "draining" in /status, read with the token (which a config may require).
    bool draining() {
        const std::string status =
            request("GET", "/status", "Authorization: Bearer " + kToken + "\r\n");
        EXPECT_THAT(status, HasSubstr("\"target\":\"" + target() + "\"")) << status;
        return status.find("\"draining\":true") != std::string::npos;
    }
};

TEST_F(AdminAccessTest, ForeignHostIsMisdirectedLoopbackNamesPass) {
    start("");
    const std::string port = std::to_string(admin_port_);
    // DNS rebinding: a page of rebind.example whose name now resolves to 127.0.0.1.
    const std::string rebound = http_exchange(
        admin_port_, "GET /status HTTP/1.1\r\nHost: rebind.example:" + port + "\r\n\r\n");
    EXPECT_EQ(status_of(rebound), 421) << rebound;
    EXPECT_THAT(rebound, Not(HasSubstr("\"targets\"")));
    for (const std::string& host :
         std::vector<std::string>{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port,
                                  std::string("LOCALHOST"), std::string("127.0.0.1")}) {
        const std::string reply =
            http_exchange(admin_port_, "GET /status HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
        EXPECT_EQ(status_of(reply), 200) << host << ": " << reply;
    }
    EXPECT_TRUE(wait_until(
        [&] { return log_count("admin: refused GET /status from 127.0.0.1:") >= 1; }, kPatience))
        << sluice_->log();
}

TEST_F(AdminAccessTest, CrossSitePostIsRefusedAndCurlStillDrains) {
    start("");
    // The browser's request of the issue: another site's page posts text/plain.
    const std::string from_page =
        request("POST", drain_path(),
                "Origin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                "Sec-Fetch-Site: cross-site\r\n");
    EXPECT_EQ(status_of(from_page), 403) << from_page;
    // A page on another port of this host: same-site, not same-origin.
    const std::string same_site = request(
        "POST", drain_path(), "Origin: http://127.0.0.1:1\r\nSec-Fetch-Site: same-site\r\n");
    EXPECT_EQ(status_of(same_site), 403) << same_site;
    EXPECT_FALSE(draining());
    EXPECT_EQ(get().status, 200);
    // curl sends neither header: it drains.
    const std::string curl = request("POST", drain_path());
    EXPECT_EQ(status_of(curl), 200) << curl;
    EXPECT_TRUE(draining());
}

TEST_F(AdminAccessTest, TokenGuardsPostsAndIsReadAgainOnReload) {
    const std::string file = token_file(kToken);
    start("admin_token_file = \"" + file + "\"\n");
    const std::string missing = request("POST", drain_path());
    EXPECT_EQ(status_of(missing), 401) << missing;
    EXPECT_THAT(missing, HasSubstr("WWW-Authenticate: Bearer realm=\"sluice admin\""));
    const std::string wrong =
        request("POST", drain_path(), "Authorization: Bearer " + kToken + "x\r\n");
    EXPECT_EQ(status_of(wrong), 401) << wrong;
    EXPECT_FALSE(draining());
    EXPECT_EQ(status_of(request("GET", "/status")), 200);  // reads need no token here
    const std::string right =
        request("POST", drain_path(), "Authorization: Bearer " + kToken + "\r\n");
    EXPECT_EQ(status_of(right), 200) << right;
    EXPECT_TRUE(draining());

    // A new token on disk is read with the rest of the config on SIGHUP.
    const std::string rotated = "rotated-token-after-reload-0123";
    token_file(rotated);
    reload(config_text());
    const std::string enable = "/targets/" + target() + "/enable";
    EXPECT_TRUE(wait_until(
        [&] {
            return status_of(
                       request("POST", enable, "Authorization: Bearer " + rotated + "\r\n")) == 200;
        },
        kPatience))
        << sluice_->log();
    EXPECT_TRUE(wait_until(  // once the old checker, which shared the socket, is gone
        [&] {
            return status_of(request("POST", enable, "Authorization: Bearer " + kToken + "\r\n")) ==
                   401;
        },
        kPatience));
}

TEST_F(AdminAccessTest, AllowRemoteNeedsTheTokenForEveryRequestAndAnyHostPasses) {
    const std::string file = token_file(kToken);
    start("admin_allow_remote = true\nadmin_token_file = \"" + file + "\"\n");
    const std::string anonymous = request("GET", "/metrics");
    EXPECT_EQ(status_of(anonymous), 401) << anonymous;
    EXPECT_THAT(anonymous, Not(HasSubstr("sluice_build_info")));
    const std::string by_name =
        http_exchange(admin_port_,
                      "GET /metrics HTTP/1.1\r\nHost: lb.example.net:9900\r\n"
                      "Authorization: Bearer " +
                          kToken + "\r\n\r\n");
    EXPECT_EQ(status_of(by_name), 200) << by_name;
    EXPECT_THAT(by_name, HasSubstr("sluice_build_info"));
}

// Clients that each open a connection to the admin listener, send the start of a request
// and then one more byte every 200 ms, never ending it, until the server closes the
// connection. Then they connect again: at once if they held it for 1 s or more (the
// server's deadline ended it: they take the slot back before anyone else can), after 100 ms
// if not (turned away or evicted: no busy loop). The 200 ms and 100 ms are the attack's
// pace, not waits for anything.
class Dribblers {
public:
    Dribblers(uint16_t port, int count) {
        for (int i = 0; i < count; ++i) threads_.emplace_back([this, port] { attack(port); });
    }
    ~Dribblers() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
    }
    long closed_by_server() const { return closed_.load(); }

private:
    void attack(uint16_t port) {
        while (!stopping()) {
            const int fd = connect_loopback(port);
            const auto start = Clock::now();
            bool closed = fd < 0;
            const std::string opening = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
            if (!closed && ::send(fd, opening.data(), opening.size(), MSG_NOSIGNAL) < 0)
                closed = true;
            while (!closed && !stopping()) {
                pollfd p{fd, POLLIN, 0};
                char buffer[256];
                if (::poll(&p, 1, 200) > 0 && ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT) <= 0)
                    closed = true;
                else if (::send(fd, "a", 1, MSG_NOSIGNAL) != 1)
                    closed = true;
            }
            if (fd >= 0) ::close(fd);
            if (closed && fd >= 0) ++closed_;
            if (closed && Clock::now() - start < 1s) pause(100ms);
        }
    }
    bool stopping() {
        std::lock_guard lock(mutex_);
        return stop_;
    }
    void pause(std::chrono::milliseconds pace) {
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, pace, [&] { return stop_; });
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::atomic<long> closed_{0};
    std::vector<std::thread> threads_;
};

TEST_F(AdminAccessTest, DribblingClientsCannotKeepMetricsUnreachable) {
    start("");
    // Far more than the listener keeps open at once (64; it was 32).
    Dribblers attack(admin_port_, 100);
    // The listener is full: it has closed some of their connections (turned away or evicted).
    ASSERT_TRUE(wait_until([&] { return attack.closed_by_server() >= 1; }, kPatience));
    int answered = 0;
    EXPECT_TRUE(wait_until(
        [&] {
            const HttpReply scrape = admin("/metrics");
            if (scrape.status == 200 && scrape.body.find("sluice_build_info") != std::string::npos)
                ++answered;
            return answered >= 50;
        },
        kPatience))
        << answered << " of 50 scrapes answered while 100 clients dribbled";
    EXPECT_EQ(get().status, 200);  // and the data path, of course
}

// Serves one HTML page on 127.0.0.1 (another origin than sluice's admin: another port)
// whose script POSTs to `drain_url` as a cross-site page would: fetch, no-cors, text/plain.
class OtherOriginPage {
public:
    explicit OtherOriginPage(const std::string& drain_url)
        : page_("<!doctype html><html><body><script>fetch(\"" + drain_url +
                "\", {method: \"POST\", mode: \"no-cors\", headers: {\"Content-Type\": "
                "\"text/plain\"}, body: \"drain\"}).then(() => document.body.dataset.sent = "
                "\"yes\", e => document.body.dataset.sent = \"error \" + e);</script>"
                "</body></html>\n"),
          server_(8, "page server", [this](int fd) { serve(fd); }) {}
    uint16_t port() const { return server_.port(); }
    int served() const { return served_.load(); }

private:
    void serve(int fd) {
        std::string head;
        char buffer[4096];
        while (!server_.stopping() && head.find("\r\n\r\n") == std::string::npos) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) return;
            head.append(buffer, static_cast<size_t>(n));
        }
        const bool page = head.rfind("GET / ", 0) == 0;
        const std::string body = page ? page_ : "";
        const std::string reply =
            std::string(page ? "HTTP/1.1 200 OK" : "HTTP/1.1 404 Not Found") +
            "\r\nContent-Type: text/html\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nConnection: close\r\n\r\n" + body;
        (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
        if (page) ++served_;
    }

    const std::string page_;
    std::atomic<int> served_{0};
    LoopbackServer server_;
};

TEST_F(AdminAccessTest, PageFromAnotherOriginCannotDrainInChromium) {
    if (::access("/usr/bin/chromium", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/chromium";
    start("");
    OtherOriginPage page("http://127.0.0.1:" + std::to_string(admin_port_) + drain_path());
    const std::string url = "http://127.0.0.1:" + std::to_string(page.port()) + "/";
    const auto browser = run_command(
        {"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--user-data-dir=" + dir_.path() + "/chromium-profile", "--dump-dom",
         "--virtual-time-budget=10000", url},
        60s);
    ASSERT_GE(page.served(), 1) << "chromium did not load the page: " << browser.output;
    // The POST reached sluice and was refused: not a test that passes because nothing came.
    EXPECT_TRUE(wait_until(
        [&] { return log_count("admin: refused POST " + drain_path() + " from 127.0.0.1:") >= 1; },
        kPatience))
        << "dom: " << browser.output << "\nlog: " << sluice_->log();
    EXPECT_THAT(sluice_->log(), HasSubstr("403 cross-site request"));
    EXPECT_FALSE(draining());
    EXPECT_EQ(get().status, 200);  // the target still serves
}

}  // namespace
}  // namespace sluice::test
