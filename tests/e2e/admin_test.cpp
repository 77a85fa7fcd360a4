// The admin listener: exact counters, Prometheus format, the HTML page in a real browser,
// and clients that must not disturb it.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <regex>

#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;

class AdminTest : public SluiceTest {
protected:
    void start(int backends) {
        start_backends(backends);
        with_admin_ = true;
        start_sluice(2);
        if (HasFatalFailure()) return;
        ASSERT_NE(admin_port_, 0) << sluice_->log();
        ASSERT_TRUE(wait_until([&] { return admin("/metrics").status == 200; }, kPatience))
            << sluice_->log();
    }

    // Every sample of /metrics: "name{labels}" -> value.
    std::map<std::string, double> metrics() {
        std::map<std::string, double> out;
        const std::string text = admin("/metrics").body;
        size_t at = 0;
        while (at < text.size()) {
            const size_t eol = text.find('\n', at);
            const std::string line = text.substr(at, eol - at);
            at = eol == std::string::npos ? text.size() : eol + 1;
            if (line.empty() || line[0] == '#') continue;
            const size_t space = line.rfind(' ');
            out[line.substr(0, space)] = std::stod(line.substr(space + 1));
        }
        return out;
    }
    std::string labels(const Backend& b) {
        const std::string a = "127.0.0.1:" + std::to_string(b.port);
        return "{target=\"" + a + "\",address=\"" + a + "\"";
    }
};

TEST_F(AdminTest, CountersAreExact) {
    start(2);
    // Counted at accept, bytes when a connection ends: read the counters when none is open
    // (start() itself made connections).
    const auto quiet = [&] {
        std::map<std::string, double> m;
        EXPECT_TRUE(wait_until(
            [&] {
                m = metrics();
                return m["sluice_target_active_connections" + labels(backends_[0]) + "}"] == 0 &&
                       m["sluice_target_active_connections" + labels(backends_[1]) + "}"] == 0;
            },
            2s));
        return m;
    };
    const auto before = quiet();
    // 10 requests: 5 to each target (exact round robin). The request and the replies of
    // /healthz have known sizes, so the byte counters must match to the byte.
    const std::string request =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    std::map<std::string, size_t> reply_bytes;
    for (int i = 0; i < 10; ++i) {
        const HttpReply r = get("/healthz");
        ASSERT_EQ(r.status, 200);
        reply_bytes[r.instance] += r.raw.size();
    }
    const auto after = quiet();
    EXPECT_EQ(after.at("sluice_connections_total") - before.at("sluice_connections_total"), 10);
    for (const Backend& b : backends_) {
        const std::string l = labels(b);
        auto delta = [&](const std::string& key) { return after.at(key) - before.at(key); };
        EXPECT_EQ(delta("sluice_target_connections_total" + l + "}"), 5) << b.name;
        EXPECT_EQ(delta("sluice_target_bytes_total" + l + ",direction=\"to_target\"}"),
                  5 * request.size())
            << b.name;
        EXPECT_EQ(delta("sluice_target_bytes_total" + l + ",direction=\"to_client\"}"),
                  reply_bytes[b.name])
            << b.name;
        EXPECT_EQ(after.at("sluice_target_active_connections" + l + "}"), 0);
        EXPECT_EQ(after.at("sluice_target_up" + l + "}"), 1);
    }
    EXPECT_EQ(after.at("sluice_workers"), 2);
    EXPECT_EQ(after.at("sluice_config_generation"), 1);
    // A 503 counts as rejected.
    stop_backend(backends_[0]);
    stop_backend(backends_[1]);
    ASSERT_TRUE(wait_until([&] { return get().status == 503; }, kPatience));
    EXPECT_GE(metrics()["sluice_rejected_total{reason=\"no_target\"}"], 1);
    EXPECT_EQ(metrics()["sluice_target_up" + labels(backends_[0]) + "}"], 0);
    // Each failed check stores its reason: "connection refused" from the next check on, even
    // if the one in flight as the target died saw a reset.
    const std::string refused = "sluice_target_last_failure_info" + labels(backends_[0]) +
                                ",reason=\"connection refused\"} 1";
    EXPECT_TRUE(wait_until(
        [&] { return admin("/metrics").body.find(refused) != std::string::npos; }, kPatience))
        << admin("/metrics").body;
}

TEST_F(AdminTest, PromtoolAcceptsTheMetrics) {
    start(2);
    get();
    const std::string file = dir_.write("metrics.txt", admin("/metrics").body);
    const auto result = run_command({"/bin/sh", "-c", "promtool check metrics < " + file});
    EXPECT_EQ(result.exit_code, 0) << result.output;
}

TEST_F(AdminTest, StatusIsJsonWithEveryTarget) {
    start(2);
    const HttpReply status = admin("/status");
    ASSERT_EQ(status.status, 200);
    EXPECT_THAT(status.raw, HasSubstr("Content-Type: application/json"));
    for (const Backend& b : backends_)
        EXPECT_THAT(status.body, HasSubstr("\"target\":\"127.0.0.1:" + std::to_string(b.port) +
                                           "\",\"address\":\"127.0.0.1:" + std::to_string(b.port) +
                                           "\",\"state\":\"UP\""));
    EXPECT_EQ(http_request(admin_port_, "POST", "/status", "{}").status, 405);
    EXPECT_EQ(admin("/nope").status, 404);
}

TEST_F(AdminTest, ASilentClientDoesNotBlockOthers) {
    start(1);
    // A client that connects and sends nothing, and one that sends half a request.
    int silent = ::socket(AF_INET, SOCK_STREAM, 0);
    int half = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(admin_port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::connect(half, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::send(half, "GET /metr", 9, 0);
    // Well inside the 5 s the server gives a silent client.
    const HttpReply reply = http_request(admin_port_, "GET", "/metrics", "", 2s);
    EXPECT_EQ(reply.status, 200);
    EXPECT_THAT(reply.body, HasSubstr("sluice_build_info"));
    EXPECT_EQ(get().status, 200);  // and the data path, of course
    ::close(silent);
    ::close(half);
}

TEST_F(AdminTest, NonLoopbackAdminIsRefusedUnlessAllowed) {
    start_backends(1);
    const std::string refused =
        dir_.write("remote.toml", "admin = \"0.0.0.0:9900\"\n" + config_text());
    const auto r = run_command({SLUICE_BIN, "--check", "--config", refused});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_THAT(r.output,
                HasSubstr(refused + ":1: \"admin\" = \"0.0.0.0:9900\" is not a loopback"));
    // Allowed, with the token every request must then carry.
    const std::string no_token = dir_.write(
        "no-token.toml", "admin = \"0.0.0.0:9900\"\nadmin_allow_remote = true\n" + config_text());
    const auto r2 = run_command({SLUICE_BIN, "--check", "--config", no_token});
    EXPECT_EQ(r2.exit_code, 1);
    EXPECT_THAT(r2.output, HasSubstr(no_token + ":2: \"admin_allow_remote\" = true needs "
                                                "\"admin_token_file\""));
    dir_.write("admin-token", "0123456789abcdef0123456789abcdef\n");
    const std::string allowed = dir_.write("allowed.toml",
                                           "admin = \"0.0.0.0:9900\"\nadmin_allow_remote = true\n"
                                           "admin_token_file = \"admin-token\"\n" +
                                               config_text());
    const auto r3 = run_command({SLUICE_BIN, "--check", "--config", allowed});
    EXPECT_EQ(r3.exit_code, 0) << r3.output;
}

// The page in headless Chromium: every target with its state. The screenshot it takes is
// the one the README shows (docs/admin-page.png is refreshed from build/ by hand).
TEST_F(AdminTest, HtmlPageShowsEveryTargetInABrowser) {
    start(2);
    stop_backend(backends_[1]);
    ASSERT_TRUE(wait_until([&] { return log_count("Healthy targets: 1") >= 1; }, kPatience));
    get();
    const std::string profile = dir_.path() + "/chromium-profile";
    const std::string url = "http://127.0.0.1:" + std::to_string(admin_port_) + "/";
    std::vector<std::string> browser = {"/usr/bin/chromium",
                                        "--headless",
                                        "--no-sandbox",
                                        "--disable-gpu",
                                        "--disable-quic",
                                        "--no-first-run",
                                        "--disable-background-networking",
                                        "--disable-component-update",
                                        "--disable-sync",
                                        "--user-data-dir=" + profile};
    auto dump = browser;
    dump.push_back("--dump-dom");
    dump.push_back(url);
    const auto dom = run_command(dump, 60s);
    ASSERT_EQ(dom.exit_code, 0) << dom.output;
    for (const Backend& b : backends_)
        EXPECT_THAT(dom.output, HasSubstr("<td>127.0.0.1:" + std::to_string(b.port) + "</td>"));
    EXPECT_THAT(dom.output, HasSubstr("<tr class=\"up\">"));
    EXPECT_THAT(dom.output, HasSubstr("<tr class=\"down\">"));
    EXPECT_THAT(dom.output, HasSubstr("connection refused"));
    auto shot = browser;
    shot.push_back("--window-size=1400,300");
    shot.push_back("--screenshot=" + std::string(SLUICE_BUILD_DIR) + "/admin-page.png");
    shot.push_back(url);
    const auto screenshot = run_command(shot, 60s);
    EXPECT_EQ(screenshot.exit_code, 0) << screenshot.output;
}

}  // namespace
}  // namespace sluice::test
