// The admin listener without sockets: the request-head parser (admin/request.hpp), the access
// checks (admin/access.hpp: peer, Host, Origin, Sec-Fetch-Site, bearer token) and the routes
// (admin/routes.hpp) on a table in plain memory.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "admin/access.hpp"
#include "admin/request.hpp"
#include "admin/routes.hpp"
#include "conf/loader.hpp"

namespace sluice::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::string_literals;

AdminRequest parsed(const std::string& head) {
    AdminRequest r;
    EXPECT_EQ(parse_request_head(head, r), "") << head;
    return r;
}

TEST(AdminRequestParse, KeepsMethodPathAndTheFourHeaders) {
    const AdminRequest r = parsed(
        "POST /targets/a%3A1/drain?x=1 HTTP/1.1\r\nhost:  localhost:9900 \r\n"
        "ORIGIN: http://localhost:9900\r\nSec-Fetch-Site: same-origin\r\n"
        "Authorization: Bearer abc\r\nX-Other: ignored\r\n\r\nbody bytes");
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/targets/a%3A1/drain");
    EXPECT_EQ(r.minor_version, 1);
    EXPECT_EQ(r.host, "localhost:9900");
    EXPECT_EQ(r.origin, "http://localhost:9900");
    EXPECT_EQ(r.sec_fetch_site, "same-origin");
    EXPECT_EQ(r.authorization, "Bearer abc");
}

TEST(AdminRequestParse, Http10MayOmitHost) {
    const AdminRequest r = parsed("GET /metrics HTTP/1.0\r\n\r\n");
    EXPECT_EQ(r.minor_version, 0);
    EXPECT_FALSE(r.host.has_value());
    EXPECT_FALSE(r.origin.has_value());
}

TEST(AdminRequestParse, RefusesWhatIsNotAPlainRequestHead) {
    for (const std::string& head : std::vector<std::string>{
             "", "\r\n\r\n",
             "GET /metrics HTTP/1.1\r\n\r\n",                     // 1.1 without Host
             "GET /metrics\r\nHost: a\r\n\r\n",                   // no version
             "GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n",         // two spaces
             "GET http://a/metrics HTTP/1.1\r\nHost: a\r\n\r\n",  // absolute form
             "GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n",          // version
             "G(T /metrics HTTP/1.1\r\nHost: a\r\n\r\n",          // method not a token
             "GET /met\x01rics HTTP/1.1\r\nHost: a\r\n\r\n",      // control in the target
             "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",      // two Hosts
             "GET / HTTP/1.1\r\nHost: a\r\norigin: x\r\nOrigin: y\r\n\r\n",
             "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",  // obs-fold
             "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
             "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
             "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",   // bare CR
             "GET / HTTP/1.1\nHost: a\r\n\r\n",        // bare LF
             "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n"s,  // NUL in a value
         }) {
        AdminRequest r;
        EXPECT_NE(parse_request_head(head, r), "") << testing::PrintToString(head);
    }
}

AdminRequest request(const std::string& method, std::optional<std::string> host = "localhost") {
    AdminRequest r;
    r.method = method;
    r.path = method == "GET" ? "/status" : "/targets/a:1/drain";
    r.host = std::move(host);
    return r;
}

TEST(AdminAccessCheck, HostMustBeALoopbackNameWithOrWithoutPort) {
    for (const char* host : {"localhost", "LocalHost:9900", "127.0.0.1", "127.0.0.1:1",
                             "127.5.6.7:9900", "[::1]", "[::1]:9900"})
        EXPECT_TRUE(is_loopback_host(host)) << host;
    for (const char* host : {"evil.example", "evil.example:9900", "localhost.evil.example",
                             "127.0.0.1.nip.io", "10.0.0.1:9900", "[::2]:9900", "::1",
                             "localhost:", "localhost:99999x", "127.1", "", "0.0.0.0:9900"})
        EXPECT_FALSE(is_loopback_host(host)) << host;

    const AdminAccess local;
    EXPECT_EQ(check_access(request("GET"), true, local).status, 0);
    const Refusal rebinding = check_access(request("GET", "evil.example:9900"), true, local);
    EXPECT_EQ(rebinding.status, 421);
    EXPECT_THAT(rebinding.why, HasSubstr("evil.example:9900"));
    EXPECT_EQ(check_access(request("GET", std::nullopt), true, local).status, 0);  // HTTP/1.0
    // Without admin_allow_remote a peer off loopback is refused outright.
    EXPECT_EQ(check_access(request("GET"), false, local).status, 403);
}

TEST(AdminAccessCheck, CrossSitePostsAreRefusedSameOriginOnesPass) {
    const AdminAccess local;
    AdminRequest post = request("POST", "127.0.0.1:9900");
    EXPECT_EQ(check_access(post, true, local).status, 0);  // curl: neither header
    post.origin = "http://127.0.0.1:9900";
    post.sec_fetch_site = "same-origin";
    EXPECT_EQ(check_access(post, true, local).status, 0);
    post.sec_fetch_site = "none";
    EXPECT_EQ(check_access(post, true, local).status, 0);
    for (const char* site : {"same-site", "cross-site", "weird"}) {
        post.sec_fetch_site = site;
        const Refusal r = check_access(post, true, local);
        EXPECT_EQ(r.status, 403) << site;
        EXPECT_THAT(r.why, HasSubstr(site));
    }
    post.sec_fetch_site.reset();
    for (const char* origin : {"http://evil.example", "null", "http://127.0.0.1:8080",
                               "https://127.0.0.1:9900", "http://127.0.0.1:9900/"}) {
        post.origin = origin;
        EXPECT_EQ(check_access(post, true, local).status, 403) << origin;
    }
    post.origin = "HTTP://127.0.0.1:9900";  // scheme and host compare without case
    EXPECT_EQ(check_access(post, true, local).status, 0);
    // A cross-site GET reads nothing a page could see (no CORS headers) and changes nothing.
    AdminRequest get = request("GET");
    get.origin = "http://evil.example";
    get.sec_fetch_site = "cross-site";
    EXPECT_EQ(check_access(get, true, local).status, 0);
}

TEST(AdminAccessCheck, TokenGuardsPostsAndWithRemoteEverything) {
    const AdminAccess token{false, "0123456789abcdef0123"};
    AdminRequest post = request("POST");
    const Refusal missing = check_access(post, true, token);
    EXPECT_EQ(missing.status, 401);
    EXPECT_FALSE(missing.bad_token);
    for (const char* wrong : {"Bearer 0123456789abcdef012", "Bearer 0123456789abcdef01234",
                              "Bearer 0123456789abcdef0124", "Basic 0123456789abcdef0123", "Bearer",
                              "0123456789abcdef0123"}) {
        post.authorization = wrong;
        EXPECT_EQ(check_access(post, true, token).status, 401) << wrong;
    }
    post.authorization = "Bearer 0123456789abcdef012X";
    EXPECT_TRUE(check_access(post, true, token).bad_token);
    post.authorization = "bearer  0123456789abcdef0123";
    EXPECT_EQ(check_access(post, true, token).status, 0);
    EXPECT_EQ(check_access(request("GET"), true, token).status, 0);  // reads need no token

    const AdminAccess remote{true, "0123456789abcdef0123"};
    AdminRequest get = request("GET", "admin.example.net:9900");  // any Host: the token guards
    EXPECT_EQ(check_access(get, false, remote).status, 401);
    get.authorization = "Bearer 0123456789abcdef0123";
    EXPECT_EQ(check_access(get, false, remote).status, 0);
    // Still no cross-site POST, token or not.
    AdminRequest post_remote = request("POST", "admin.example.net:9900");
    post_remote.authorization = get.authorization;
    EXPECT_EQ(check_access(post_remote, false, remote).status, 0);
    post_remote.sec_fetch_site = "cross-site";
    EXPECT_EQ(check_access(post_remote, false, remote).status, 403);
}

TEST(AdminAccessCheck, TokensCompareWholly) {
    EXPECT_TRUE(tokens_equal("abc", "abc"));
    EXPECT_FALSE(tokens_equal("abd", "abc"));
    EXPECT_FALSE(tokens_equal("ab", "abc"));
    EXPECT_FALSE(tokens_equal("abcabc", "abc"));
    EXPECT_FALSE(tokens_equal("", "abc"));
    EXPECT_FALSE(tokens_equal("", ""));  // no token configured never matches
}

// The routes on a table in plain memory: what a refused request gets, and that it changes
// nothing.
class AdminRoutesTest : public ::testing::Test {
protected:
    AdminRoutesTest() {
        std::string error;
        loopback_ = net::resolve({"127.0.0.1", 40000}, error).front();
        remote_ = net::resolve({"192.0.2.1", 40000}, error).front();
    }
    std::string reply(const std::string& head, const net::Endpoint& peer) {
        return AdminRoutes(config_, *table_, *ledger_).reply(head, peer);
    }
    Config config_ = parse_config("[[targets]]\naddress = \"127.0.0.1:8001\"\n", "t.toml");
    std::unique_ptr<SharedTable> table_ = std::make_unique<SharedTable>();
    std::unique_ptr<LoadLedger> ledger_ = std::make_unique<LoadLedger>();
    net::Endpoint loopback_, remote_;
};

const std::string kDrain = "POST /targets/127.0.0.1%3A8001/drain HTTP/1.1\r\n";

TEST_F(AdminRoutesTest, DrainFromCurlOnLoopback) {
    EXPECT_THAT(reply(kDrain + "Host: localhost:9900\r\n\r\n", loopback_),
                StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_EQ(table_->groups[0].draining.load(), 1u);
    EXPECT_THAT(
        reply("POST /targets/127.0.0.1:8001/enable HTTP/1.1\r\nHost: [::1]\r\n\r\n", loopback_),
        StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_EQ(table_->groups[0].draining.load(), 0u);
}

TEST_F(AdminRoutesTest, RefusalsChangeNothing) {
    // The browser's request of the issue: a page of another site posts text/plain.
    EXPECT_THAT(reply(kDrain + "Host: 127.0.0.1:9900\r\nOrigin: http://evil.example\r\n"
                               "Content-Type: text/plain\r\nSec-Fetch-Site: cross-site\r\n\r\nx",
                      loopback_),
                StartsWith("HTTP/1.1 403 Forbidden\r\n"));
    EXPECT_THAT(reply(kDrain + "Host: evil.example:9900\r\n\r\n", loopback_),
                StartsWith("HTTP/1.1 421 Misdirected Request\r\n"));
    EXPECT_THAT(reply(kDrain + "Host: localhost\r\n\r\n", remote_),
                StartsWith("HTTP/1.1 403 Forbidden\r\n"));
    EXPECT_THAT(reply("GET /status HTTP/1.1\r\nHost: evil.example\r\n\r\n", loopback_),
                StartsWith("HTTP/1.1 421 "));
    EXPECT_THAT(reply("GET /status HTTP/1.1\r\n\r\n", loopback_),
                StartsWith("HTTP/1.1 400 Bad Request\r\n"));
    EXPECT_EQ(table_->groups[0].draining.load(), 0u);
}

TEST_F(AdminRoutesTest, MissingOrWrongTokenIsA401WithAChallenge) {
    config_.admin_token = "0123456789abcdef0123";
    const std::string missing = reply(kDrain + "Host: localhost\r\n\r\n", loopback_);
    EXPECT_THAT(missing, StartsWith("HTTP/1.1 401 Unauthorized\r\n"));
    EXPECT_THAT(missing, HasSubstr("\r\nWWW-Authenticate: Bearer realm=\"sluice admin\"\r\n"));
    const std::string wrong =
        reply(kDrain + "Host: localhost\r\nAuthorization: Bearer nope\r\n\r\n", loopback_);
    EXPECT_THAT(wrong, HasSubstr("error=\"invalid_token\""));
    EXPECT_EQ(table_->groups[0].draining.load(), 0u);
    EXPECT_THAT(reply(kDrain + "Host: localhost\r\nAuthorization: Bearer " + config_.admin_token +
                          "\r\n\r\n",
                      loopback_),
                StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_EQ(table_->groups[0].draining.load(), 1u);
}

}  // namespace
}  // namespace sluice::admin
