// safetensors: a round trip, F64 read exactly and narrowed, F64 written, and every malformed file rejected with one
// `FILE: error: ...` message.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "runtime/Safetensors.h"
#include "support/Diagnostics.h"

using namespace gradc;
using namespace gradc::rt;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("gradc_st_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string &name) const { return (path / name).string(); }
};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

template <typename T>
std::string bytesOf(const std::vector<T> &v) {
  return std::string(reinterpret_cast<const char *>(v.data()), v.size() * sizeof(T));
}

void writeRaw(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A file made of a header length, a JSON header and data bytes.
std::string makeFile(const std::string &header, const std::string &data) {
  return le64(header.size()) + header + data;
}

// The message of the UserError that reading `bytes` gives ("" when it reads fine).
std::string readError(const TempDir &d, const std::string &bytes) {
  std::string p = d.file("bad.safetensors");
  writeRaw(p, bytes);
  try {
    readSafetensors(p);
  } catch (const UserError &e) {
    CHECK(e.fileName == p);
    return e.what();
  }
  return "";
}

const std::string kF32Data = bytesOf(std::vector<float>{1, 2, 3, 4});

}  // namespace

TEST_CASE("safetensors: write then read gives the same tensors") {
  TempDir d;
  TensorFile f;
  f.tensors = {{"W1", {2, 2}, {1.5f, -2, 3.25f, 0}}, {"loss", {}, {0.125f}}, {"b", {3}, {7, 8, 9}}};
  f.metadata["format"] = "pt";
  std::string p = d.file("w.safetensors");
  writeSafetensors(p, f);
  TensorFile g = readSafetensors(p);
  REQUIRE(g.tensors.size() == 3);
  CHECK(g.tensors[0].name == "W1");
  CHECK(g.tensors[0].shape == std::vector<int64_t>{2, 2});
  CHECK(g.tensors[0].data == std::vector<float>{1.5f, -2, 3.25f, 0});
  REQUIRE(g.find("loss"));
  CHECK(g.find("loss")->shape.empty());
  CHECK(g.find("loss")->data == std::vector<float>{0.125f});
  CHECK(g.find("b")->data == std::vector<float>{7, 8, 9});
  CHECK(g.find("nope") == nullptr);
  CHECK(g.metadata.at("format") == "pt");
  // The header is padded to 8 bytes, as the reference implementation writes it.
  std::ifstream in(p, std::ios::binary);
  char len[8];
  in.read(len, 8);
  uint64_t n;
  std::memcpy(&n, len, 8);
  CHECK(n % 8 == 0);
  // Nothing but the file itself is left in the folder.
  CHECK(std::distance(fs::directory_iterator(d.path), fs::directory_iterator{}) == 1);
}

TEST_CASE("safetensors: F64 is narrowed") {
  TempDir d;
  std::string p = d.file("f64.safetensors");
  std::string header = R"({"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"y":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}})";
  writeRaw(p, makeFile(header, bytesOf(std::vector<double>{0.1, -3}) + bytesOf(std::vector<float>{5})));
  TensorFile f = readSafetensors(p);
  CHECK(f.find("x")->data == std::vector<float>{0.1f, -3.0f});
  CHECK(f.find("x")->f64);
  CHECK(f.find("x")->data64 == std::vector<double>{0.1, -3});
  CHECK(f.find("y")->data == std::vector<float>{5});
  CHECK(!f.find("y")->f64);
}

TEST_CASE("safetensors: tensors of other dtypes are set aside; needed, they are an error") {
  TempDir d;
  std::string p = d.file("mixed.safetensors");
  std::string header = R"({"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
                       R"("h":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
                       R"("y":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})";
  writeRaw(p, makeFile(header, bytesOf(std::vector<double>{0}) + "\1\2\3\4" + bytesOf(std::vector<float>{5})));
  TensorFile f = readSafetensors(p);
  REQUIRE(f.tensors.size() == 1);
  CHECK(f.find("y")->data == std::vector<float>{5});
  CHECK(f.find("n") == nullptr);
  CHECK(f.otherDtypes == std::map<std::string, std::string>{{"h", "BF16"}, {"n", "I64"}});
  f.checkReadable(p, "y");
  f.checkReadable(p, "missing");
  try {
    f.checkReadable(p, "n");
    CHECK(false);
  } catch (const UserError &e) {
    CHECK(std::string(e.what()) == "tensor 'n' has dtype I64; gradc reads F32 and F64");
  }
}

TEST_CASE("safetensors: F64 tensors are written as F64 and read back exactly") {
  TempDir d;
  TensorFile f;
  NamedTensor t;
  t.name = "w";
  t.shape = {3};
  t.f64 = true;
  t.data64 = {0.1, 1.0 / 3, -1e300};
  f.tensors.push_back(t);
  f.tensors.push_back({"s", {}, {2.5f}});
  std::string p = d.file("w64.safetensors");
  writeSafetensors(p, f);
  std::ifstream in(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(bytes.find(R"("w":{"dtype":"F64","shape":[3],"data_offsets":[0,24]})") != std::string::npos);
  CHECK(bytes.find(R"("s":{"dtype":"F32","shape":[],"data_offsets":[24,28]})") != std::string::npos);
  TensorFile g = readSafetensors(p);
  CHECK(g.find("w")->f64);
  CHECK(g.find("w")->data64 == t.data64);
  CHECK(g.find("w")->data == std::vector<float>{0.1f, static_cast<float>(1.0 / 3), -INFINITY});
  CHECK(g.find("s")->data == std::vector<float>{2.5f});
}

TEST_CASE("safetensors: the exact F64 copy of an F32 tensor is used only while it rounds to it") {
  TensorFile f;
  f.tensors = {{"W", {2}, {0.1f, static_cast<float>(1.0 / 3)}}, {"b", {1}, {2}}, {"c", {1}, {1}}};
  CHECK(exactCopyName("W") == "W.f64");
  CHECK(exactCopyName("W.m") == "W.m.f64");
  CHECK(exactCopy(f, f.tensors[0]) == nullptr);
  NamedTensor copy;
  copy.name = "W.f64";
  copy.shape = {2};
  copy.f64 = true;
  copy.data64 = {0.1, 1.0 / 3};
  f.tensors.push_back(copy);
  REQUIRE(exactCopy(f, f.tensors[0]) != nullptr);
  CHECK(exactCopy(f, f.tensors[0])->data64 == copy.data64);
  // Stale (W was rewritten), of another shape, or F32: ignored.
  f.tensors[0].data[1] = 0.5f;
  CHECK(exactCopy(f, f.tensors[0]) == nullptr);
  copy.name = "b.f64";
  copy.data64 = {2, 2};
  f.tensors.push_back(copy);
  CHECK(exactCopy(f, f.tensors[1]) == nullptr);
  f.tensors.push_back({"c.f64", {1}, {1}});
  CHECK(exactCopy(f, f.tensors[2]) == nullptr);
}

TEST_CASE("safetensors: malformed files") {
  TempDir d;
  auto entry = [](const std::string &dtype, const std::string &shape, const std::string &off) {
    return R"({"a":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + off + "}}";
  };
  CHECK(readError(d, "") == "not a safetensors file: 0 bytes, too short for the header length");
  CHECK(readError(d, "abc") == "not a safetensors file: 3 bytes, too short for the header length");
  CHECK(readError(d, le64(100) + "{}") ==
        "not a safetensors file: the header length 100 runs past the end of the file (10 bytes)");
  CHECK(readError(d, le64(~uint64_t(0)) + "{}").find("runs past the end of the file") != std::string::npos);
  CHECK(readError(d, makeFile("{\"a\": ", "")) == "the safetensors header is not valid JSON");
  CHECK(readError(d, makeFile("[1, 2]", "")) == "the safetensors header is not a JSON object");
  // Padding after the object: spaces (JSON white space), never NULs or other bytes.
  CHECK(readError(d, makeFile("{}      ", "")) == "");
  CHECK(readError(d, makeFile("{}\n\t\r ", "")) == "");
  CHECK(readError(d, makeFile(std::string("{}\0\0\0\0\0\0", 8), "")) ==
        "the safetensors header holds a NUL byte (at byte 10 of the file); it may be padded with white space "
        "only (spaces, tabs, line breaks)");
  CHECK(readError(d, makeFile(std::string("{} \0", 4), "")).find("holds a NUL byte (at byte 11") != std::string::npos);
  CHECK(readError(d, makeFile("{}    x ", "")) == "the safetensors header is not valid JSON");
  // The header begins with its object's `{`: white space before it is refused (the reference
  // implementation's InvalidHeaderStart), only after it allowed.
  for (const char *lead : {" ", "\n", "\t", "\r\n", "        "})
    CHECK(readError(d, makeFile(std::string(lead) + "{}", "")) ==
          "the safetensors header begins with white space; it must begin with '{' (spaces may only pad it "
          "after the JSON object)");
  CHECK(readError(d, makeFile(R"({"a": 3})", "")) == "tensor 'a' is not described by a JSON object");
  CHECK(readError(d, makeFile(R"({"a": {"dtype":"F32","shape":[1]}})", "")) == "tensor 'a' has no 'data_offsets'");
  CHECK(readError(d, makeFile(entry("X32", "[2]", "[0,8]"), kF32Data)) ==
        "tensor 'a' has dtype X32, which is not a safetensors dtype");
  CHECK(readError(d, makeFile(entry("I64", "[3]", "[0,16]"), kF32Data + kF32Data)) ==
        "tensor 'a' of shape [3] and dtype I64 needs 24 bytes, but its data_offsets give 16");
  CHECK(readError(d, makeFile(entry("F32", "[3]", "[0,16]"), kF32Data)) ==
        "tensor 'a' of shape [3] and dtype F32 needs 12 bytes, but its data_offsets give 16");
  CHECK(readError(d, makeFile(entry("F32", "[-4]", "[0,16]"), kF32Data)) ==
        "tensor 'a' has a shape entry that is not a size");
  CHECK(readError(d, makeFile(entry("F32", "4", "[0,16]"), kF32Data)) == "tensor 'a' has a shape that is not a list");
  CHECK(readError(d, makeFile(entry("F32", "[4]", "[0]"), kF32Data)) ==
        "tensor 'a' has data_offsets that are not two sizes");
  // Whole numbers, but more than any file holds: said so.
  CHECK(readError(d, makeFile(entry("F32", "[4]", "[4611686018427387904,4611686018427387920]"), kF32Data)) ==
        "tensor 'a' has data_offsets [4611686018427387904, 4611686018427387920] beyond any file (2^62 bytes or more)");
  CHECK(readError(d, makeFile(entry("F32", "[18446744073709551615]", "[0,16]"), kF32Data)) ==
        "tensor 'a' has a shape entry 18446744073709551615 too large for any file (2^62 or more)");
  CHECK(readError(d, makeFile(entry("F32", "[4]", "[16,0]"), kF32Data)) ==
        "tensor 'a' has data_offsets that end before they begin");
  CHECK(readError(d, makeFile(entry("F32", "[4]", "[4,20]"), kF32Data)) ==
        "tensor 'a' has data_offsets [4, 20] beyond the data (16 bytes)");
  CHECK(readError(d, makeFile(entry("F32", "[4294967296, 4294967296]", "[0,16]"), kF32Data))
            .find("needs") != std::string::npos);
  std::string overlap =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  CHECK(readError(d, makeFile(overlap, kF32Data)) == "tensors 'a' and 'b' overlap");
  // A name given twice in one object is refused (the JSON reader keeps the last silently).
  std::string a = R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})";
  CHECK(readError(d, makeFile(R"({"a":)" + a + R"(,"a":)" + a + "}", kF32Data)) ==
        "the safetensors header holds two tensors named 'a'");
  CHECK(readError(d, makeFile(R"({"a":{"dtype":"F64","dtype":"F32","shape":[4],"data_offsets":[0,16]}})", kF32Data)) ==
        "tensor 'a' names 'dtype' twice in the safetensors header");
  CHECK(readError(d, makeFile(R"({"__metadata__":{},"__metadata__":{}})", "")) ==
        "the safetensors header holds __metadata__ twice");
  CHECK(readError(d, makeFile(R"({"__metadata__":{"k":"1","k":"1"}})", "")) ==
        "__metadata__ names 'k' twice in the safetensors header");
  CHECK(readError(d, makeFile(R"({"__metadata__":{"a":"1"},"a":)" + a + "}", kF32Data)) == "");
  CHECK(readError(d, makeFile(R"({"__metadata__": [1]})", "")) == "__metadata__ is not a JSON object");
  CHECK(readError(d, makeFile(R"({"__metadata__": {"k": 1}})", "")) == "__metadata__ entry 'k' is not a string");
  CHECK(readError(d, makeFile(entry("F32", "[4]", "[0,16]"), kF32Data)) == "");
  // The tensors cover the data exactly, as the reference implementation requires
  // (MetadataIncompleteBuffer, InvalidOffset): no bytes after the last, before the first or
  // between two.
  CHECK(readError(d, makeFile(entry("F32", "[4]", "[0,16]"), kF32Data + "junk")) ==
        "no tensor covers the last 4 bytes of the data, after tensor 'a' (the data is 20 bytes; a "
        "safetensors file ends with its last tensor's data)");
  CHECK(readError(d, makeFile(entry("F32", "[3]", "[0,12]"), kF32Data)) ==
        "no tensor covers the last 4 bytes of the data, after tensor 'a' (the data is 16 bytes; a "
        "safetensors file ends with its last tensor's data)");
  CHECK(readError(d, makeFile("{}", "x")) ==
        "no tensor covers the last 1 byte of the data, after a header of no tensors (the data is 1 byte; "
        "a safetensors file ends with its last tensor's data)");
  CHECK(readError(d, makeFile(entry("F32", "[3]", "[4,16]"), kF32Data)) ==
        "no tensor covers the first 4 bytes of the data, before tensor 'a'");
  std::string gap =
      R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  CHECK(readError(d, makeFile(gap, kF32Data)) ==
        "no tensor covers bytes 4 to 12 of the data, between tensors 'a' and 'b'");
  // Empty tensors take no bytes, wherever they are.
  std::string empty =
      R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[16,16]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})";
  CHECK(readError(d, makeFile(empty, kF32Data)) == "");
  CHECK(readError(d, makeFile("{}", "")) == "");
  // A shape nested a million deep crashed the JSON library (it copies values recursively).
  CHECK(readError(d, makeFile(entry("F32", std::string(1000000, '[') + std::string(1000000, ']'), "[0,16]"),
                              kF32Data)) == "the safetensors header nests more than 16 deep");
  CHECK(readError(d, makeFile(std::string(17, '[') + std::string(17, ']'), "")) ==
        "the safetensors header nests more than 16 deep");
  CHECK(readError(d, makeFile(std::string(16, '[') + std::string(16, ']'), "")) ==
        "the safetensors header is not a JSON object");

  try {
    readSafetensors(d.path.string());
    FAIL("expected an error");
  } catch (const UserError &e) {
    CHECK(std::string(e.what()) == "is a directory, not a safetensors file");
  }
  try {
    readSafetensors(d.file("missing.safetensors"));
    FAIL("expected an error");
  } catch (const UserError &e) {
    CHECK(std::string(e.what()) == "cannot read file: No such file or directory");
  }
}

TEST_CASE("safetensors: a failed write leaves the old file whole") {
  TempDir d;
  std::string p = d.file("w.safetensors");
  TensorFile f;
  f.tensors = {{"a", {1}, {1}}};
  writeSafetensors(p, f);
  CHECK_THROWS_AS(writeSafetensors(d.file("no/such/dir/w.safetensors"), f), UserError);
  f.tensors[0].data = {2};
  writeSafetensors(p, f);
  CHECK(readSafetensors(p).tensors[0].data == std::vector<float>{2});
  CHECK(std::distance(fs::directory_iterator(d.path), fs::directory_iterator{}) == 1);
}
