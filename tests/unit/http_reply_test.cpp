#include <gtest/gtest.h>

#include "health/http_reply.hpp"

namespace sluice::health {
namespace {

StatusLine parse(std::string_view bytes, int& status) { return parse_status_line(bytes, status); }

TEST(HttpReply, ReadsTheStatusCode) {
    int status = 0;
    EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK", status), StatusLine::ok);
    EXPECT_EQ(status, 200);
    EXPECT_EQ(parse("HTTP/1.0 503 Service Unavailable\r\n", status), StatusLine::ok);
    EXPECT_EQ(status, 503);
    EXPECT_EQ(parse("HTTP/1.1 204\r\n", status), StatusLine::ok);  // reason phrase is optional
    EXPECT_EQ(status, 204);
    EXPECT_EQ(parse("HTTP/1.1 301 Moved\n", status), StatusLine::ok);  // bare LF
    EXPECT_EQ(status, 301);
}

TEST(HttpReply, AsksForMoreUntilTheLineIsComplete) {
    int status = 0;
    EXPECT_EQ(parse("", status), StatusLine::incomplete);
    EXPECT_EQ(parse("HTT", status), StatusLine::incomplete);
    EXPECT_EQ(parse("HTTP/1.1 200 O", status), StatusLine::incomplete);
}

TEST(HttpReply, RejectsWhatIsNotAStatusLine) {
    int status = 0;
    EXPECT_EQ(parse("SSH-2.0-OpenSSH_9.2\r\n", status), StatusLine::malformed);
    EXPECT_EQ(parse("garbage", status), StatusLine::malformed);
    EXPECT_EQ(parse("HTTP/2 200\r\n", status), StatusLine::malformed);
    EXPECT_EQ(parse("HTTP/1.1 2x0 OK\r\n", status), StatusLine::malformed);
    EXPECT_EQ(parse("HTTP/1.1 20\r\n", status), StatusLine::malformed);
    EXPECT_EQ(parse("HTTP/1.1 2000 OK\r\n", status), StatusLine::malformed);
    EXPECT_EQ(parse("HTTP/1.1 099 OK\r\n", status), StatusLine::malformed);
    EXPECT_EQ(parse("HTTP/1.1 200" + std::string(2000, 'x'), status), StatusLine::malformed);
}

TEST(HttpReply, ALongLineIsMalformedInOneReadAsInMany) {
    // Found by fuzz/status_line_fuzz.cpp: the first 1025 bytes alone were malformed, the
    // whole line with its newline was accepted.
    const std::string line = "HTTP/1.1 200 " + std::string(1100, 'x') + "\r\n";
    int status = 0;
    EXPECT_EQ(parse(line.substr(0, 1025), status), StatusLine::malformed);
    EXPECT_EQ(parse(line, status), StatusLine::malformed);
    const std::string longest = "HTTP/1.1 200 " + std::string(1024 - 13, 'x') + "\n";
    EXPECT_EQ(parse(longest, status), StatusLine::ok);
}

}  // namespace
}  // namespace sluice::health
