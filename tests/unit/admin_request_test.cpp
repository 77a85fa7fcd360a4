#include <gtest/gtest.h>

#include "admin/http_request.hpp"

namespace sluice::admin {
namespace {

TEST(AdminRequest, ReadsMethodAndPathWithoutTheQuery) {
    RequestLine line;
    EXPECT_EQ(parse_request_line("GET /status?pretty=1 HTTP/1.1\r\nHost: x\r\n\r\n", line), "");
    EXPECT_EQ(line.method, "GET");
    EXPECT_EQ(line.path, "/status");
    EXPECT_EQ(parse_request_line("POST /targets/a%3A1/drain HTTP/1.0\n\n", line), "");
    EXPECT_EQ(line.method, "POST");
    EXPECT_EQ(line.path, "/targets/a%3A1/drain");
}

TEST(AdminRequest, ReadsOnlyTheFirstLine) {
    RequestLine line;
    // The spaces of a header must not make a request line of "GET\r\nHost:".
    EXPECT_NE(parse_request_line("GET\r\nHost: a b\r\n\r\n", line), "");
    EXPECT_NE(parse_request_line("GET /\r\nUser-Agent: x y\r\n\r\n", line), "");
}

TEST(AdminRequest, RejectsAMissingPart) {
    RequestLine line;
    EXPECT_NE(parse_request_line("", line), "");
    EXPECT_NE(parse_request_line("GET", line), "");
    EXPECT_NE(parse_request_line(" / HTTP/1.1\r\n", line), "");    // no method
    EXPECT_NE(parse_request_line("GET  HTTP/1.1\r\n", line), "");  // no target
}

}  // namespace
}  // namespace sluice::admin
