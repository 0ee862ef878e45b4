// JSON from files: nesting is bounded without recursion, duplicate keys are refused, and the
// running state refuses on save what loads would refuse.
#include <gtest/gtest.h>

#include <string>

#include "ckptio/error.hpp"
#include "core/quoted.hpp"
#include "core/untrusted_json.hpp"
#include "h5/running_state_codec.hpp"

namespace ckptio::detail {
namespace {

std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string message_of(const std::string& text) {
  try {
    parse_untrusted_json(text, "f.json");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(UntrustedJson, DeepNestingIsRefusedWithoutRecursion) {
  // 100,000 levels crashed nlohmann's recursive copy and dump with SIGSEGV.
  EXPECT_EQ(message_of(nested(100'000)), "f.json: nested more than 128 levels deep");
  EXPECT_EQ(message_of("{\"a\":" + nested(200'000) + "}"), "f.json: nested more than 128 levels deep");
  // An unterminated deep prefix too (the parser stops at level 129, before the end).
  EXPECT_EQ(message_of(std::string(1'000'000, '[')), "f.json: nested more than 128 levels deep");
}

TEST(UntrustedJson, DepthLimitIsExact) {
  EXPECT_NO_THROW(parse_untrusted_json(nested(kMaxJsonDepth), "f"));
  EXPECT_EQ(message_of(nested(kMaxJsonDepth + 1)), "f.json: nested more than 128 levels deep");
  const auto parsed = parse_untrusted_json(nested(kMaxJsonDepth), "f");
  EXPECT_EQ(json_depth(parsed), kMaxJsonDepth);
  EXPECT_EQ(json_depth(nlohmann::json(3)), 0u);
  EXPECT_EQ(json_depth(nlohmann::json::array()), 1u);
  EXPECT_EQ(json_depth(parsed, 10), 11u);  // stops counting past the limit
}

TEST(UntrustedJson, DuplicateKeysAreRefusedAtAnyDepth) {
  const auto top = try_parse_untrusted_json(R"({"a":1,"b":2,"a":3})");
  EXPECT_EQ(top.problem, UntrustedJsonResult::Problem::DuplicateKey);
  EXPECT_EQ(top.key, "a");
  EXPECT_EQ(top.depth, 1u);
  const auto inner = try_parse_untrusted_json(R"({"a":{"x":[{"k":1,"k":2}]}})");
  EXPECT_EQ(inner.key, "k");
  EXPECT_EQ(inner.depth, 4u);
  EXPECT_EQ(message_of(R"({"a":1,"a":1})"), "f.json: key 'a' appears twice in one object");
  // The same key in different objects is fine.
  EXPECT_NO_THROW(parse_untrusted_json(R"({"a":{"k":1},"b":{"k":2}})", "f"));
  // Keys are compared after unescaping; a NUL in a key is shown escaped, never cuts the text.
  EXPECT_EQ(message_of("{\"a\\u0000b\":1,\"a\\u0000b\":2}"), "f.json: key 'a\\x00b' appears twice in one object");
  EXPECT_EQ(message_of(R"({"\u0041":1,"A":2})"), "f.json: key 'A' appears twice in one object");
}

TEST(UntrustedJson, ParsesWhatNlohmannParses) {
  const std::string text = R"({"n":null,"t":true,"i":-3,"u":18446744073709551615,"f":1.5,"s":"x\u00e9",)"
                           R"("a":[1,[2,{"b":[]}]],"o":{}})";
  EXPECT_EQ(parse_untrusted_json(text, "f"), nlohmann::json::parse(text));
  EXPECT_EQ(parse_untrusted_json("[]", "f"), nlohmann::json::array());
  EXPECT_EQ(parse_untrusted_json("  7 ", "f"), nlohmann::json(7));
}

TEST(UntrustedJson, SyntaxErrorsNameTheInput) {
  EXPECT_EQ(message_of("").rfind("f.json: not valid JSON: ", 0), 0u) << message_of("");
  EXPECT_EQ(message_of("{\"a\":").rfind("f.json: not valid JSON: ", 0), 0u);
  EXPECT_EQ(message_of("[1] trailing").rfind("f.json: not valid JSON: ", 0), 0u);
  EXPECT_EQ(message_of("\"\xff\"").rfind("f.json: not valid JSON: ", 0), 0u);
}

TEST(UntrustedJson, RunningStateRefusesOnSaveWhatLoadsRefuse) {
  RunningState state;
  state.sampler = nlohmann::json::parse(nested(kMaxJsonDepth - 1));
  EXPECT_NO_THROW(h5::encode_running_state(state));
  const std::string stored = h5::encode_running_state(state);
  EXPECT_NO_THROW(h5::decode_running_state(stored, "c.h5"));
  state.sampler = nlohmann::json::parse(nested(kMaxJsonDepth));
  try {
    h5::encode_running_state(state);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "running state field 'sampler' nests arrays and objects more than 127 levels deep, which loads "
                 "refuse");
  }
  try {
    h5::decode_running_state(R"({"epoch":1,"step":2,"global_step":3,"extras":)" + nested(100'000) + "}", "c.h5");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_STREQ(e.what(), "c.h5: invalid running state: nested more than 128 levels deep");
  }
}

TEST(Quoted, EscapesControlBytesAndCuts) {
  EXPECT_EQ(quoted_text("w"), "'w'");
  EXPECT_EQ(quoted_text(std::string("a\0b\n\x7f\\", 6)), "'a\\x00b\\n\\x7f\\\\'");
  EXPECT_EQ(quoted_text("abcdef", 3), "'abc...'");
  EXPECT_EQ(quoted_text("\xc3\xa9"), "'\xc3\xa9'");      // UTF-8 stays readable
  EXPECT_EQ(quoted_text("a\xff\xc3"), "'a\\xff\\xc3'");  // invalid UTF-8 does not
}

}  // namespace
}  // namespace ckptio::detail
