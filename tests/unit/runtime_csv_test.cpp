// The CSV reader (docs/language.md, "Data"): accepted oddities, exact parsing, and every error
// with its message, line and column.
#include <doctest/doctest.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "runtime/Csv.h"
#include "support/Diagnostics.h"

using namespace gradc;
using namespace gradc::rt;

namespace {

std::string writeTemp(const std::string &name, const std::string &content) {
  auto dir = std::filesystem::temp_directory_path() / "gradc_runtime_csv_test";
  std::filesystem::create_directories(dir);
  std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// x: two floats, y: a label in [0, 3).
std::vector<InputSpec> xy() {
  return {{"x", false, 2, 0}, {"y", true, 1, 3}};
}

Dataset read(const std::string &content, std::vector<InputSpec> specs = xy()) {
  return readCsv(writeTemp("t.csv", content), specs);
}

// The rendered error for reading `content`, with the file name replaced by F: its first line
// (`F:LINE:COL: error: ...`), or with `quote` also the quoted row and caret under it.
std::string errorOf(const std::string &content, std::vector<InputSpec> specs = xy(), bool quote = false) {
  std::string path = writeTemp("bad.csv", content);
  try {
    readCsv(path, specs);
  } catch (const UserError &e) {
    SourceManager sm;
    std::string s = renderUserError(sm, e);
    REQUIRE(s.rfind(path, 0) == 0);
    if (!quote) s = s.substr(0, s.find('\n') + 1);
    return "F" + s.substr(path.size());
  }
  return "no error";
}

// The quoted row and caret under the error of reading `content` after a header line (so
// that a first row of text is read as data).
std::string quoteOf(const std::string &content, std::vector<InputSpec> specs = xy()) {
  std::string s = errorOf("a,b,c\n" + content, specs, true);
  return s.substr(s.find('\n') + 1);
}

float parse1(const std::string &cell) {
  Dataset d = read(cell + "\n", {{"v", false, 1, 0}});
  REQUIRE(d.rows == 1);
  return d.inputs[0].f[0];
}

}  // namespace

TEST_CASE("csv: header, values and labels") {
  Dataset d = read("a,b,label\n1,2,0\n3.5,-4e2,2\n");
  CHECK(d.rows == 2);
  REQUIRE(d.inputs.size() == 2);
  CHECK(d.inputs[0].name == "x");
  CHECK(d.inputs[0].f == std::vector<float>{1, 2, 3.5f, -400});
  CHECK(d.inputs[1].i == std::vector<int32_t>{0, 2});
  CHECK(d.lines == std::vector<int32_t>{2, 3});  // each row's line of the file
}

TEST_CASE("csv: a first line of numbers is data") {
  Dataset d = read("1,2,0\n3,4,1\n");
  CHECK(d.rows == 2);
  CHECK(d.inputs[0].f == std::vector<float>{1, 2, 3, 4});
  CHECK(d.lines == std::vector<int32_t>{1, 2});
}

TEST_CASE("csv: BOM, CRLF, blank lines, spaces, tabs, no final newline") {
  Dataset d = read("\xEF\xBB\xBFx1,x2,y\r\n\r\n  1 ,\t2,0 \r\n\n   \n+3,4 , 1");
  CHECK(d.rows == 2);
  CHECK(d.inputs[0].f == std::vector<float>{1, 2, 3, 4});
  CHECK(d.inputs[1].i == std::vector<int32_t>{0, 1});
  CHECK(d.lines == std::vector<int32_t>{3, 6});  // blank lines count, as in error messages
  // A BOM before a data line: the first line is data.
  Dataset e = read("\xEF\xBB\xBF" "5,6,2\n");
  CHECK(e.inputs[0].f == std::vector<float>{5, 6});
  // A label written as a float with no fraction is whole.
  CHECK(read("1,2,2.0\n").inputs[1].i == std::vector<int32_t>{2});
}

TEST_CASE("csv: values parse to the nearest float") {
  CHECK(parse1("0.1") == 0.1f);
  CHECK(parse1("16777217") == 16777216.0f);  // halfway: ties to even
  CHECK(parse1("16777219") == 16777220.0f);  // halfway: ties to even (up)
  // 1 + 2^-24 is halfway between 1 and the next float: ties to even gives 1; a hair above
  // it must round up. (Parsing via double first would give 1 for both.)
  CHECK(parse1("1.000000059604644775390625") == 1.0f);
  CHECK(parse1("1.0000000596046447753906251") == std::nextafter(1.0f, 2.0f));
  CHECK(parse1("3.4028234663852886e38") == std::numeric_limits<float>::max());
  CHECK(parse1("1.401298464324817e-45") == std::numeric_limits<float>::denorm_min());
  CHECK(parse1("1e-50") == 0.0f);
  // Beyond double's range too (from_chars then leaves its result unset): still ±0.
  CHECK(parse1("1e-400") == 0.0f);
  CHECK(std::signbit(parse1("-1e-400")));
  float negZero = parse1("-0");
  CHECK(negZero == 0.0f);
  CHECK(std::signbit(negZero));
  CHECK(parse1("1E3") == 1000.0f);
  CHECK(parse1(".5") == 0.5f);
}

TEST_CASE("csv: for a float64 run, values parse to the nearest double") {
  std::vector<InputSpec> specs = {{"v", false, 2, 0}, {"y", true, 1, 3}};
  Dataset d = readCsv(writeTemp("t64.csv", "a,b,y\n0.1,16777217,2\n1e39, 1e-400 ,0\n"), specs, true);
  REQUIRE(d.rows == 2);
  CHECK(d.inputs[0].f.empty());
  CHECK(d.inputs[0].d == std::vector<double>{0.1, 16777217.0, 1e39, 0.0});
  CHECK(d.inputs[1].i == std::vector<int32_t>{2, 0});
  std::string path = writeTemp("big64.csv", "1,1e400,0\n");
  try {
    readCsv(path, specs, true);
    FAIL("1e400 is read");
  } catch (const UserError &e) {
    SourceManager sm;
    CHECK(renderUserError(sm, e).rfind(path + ":1:3: error: '1e400' is too large for a double\n", 0) == 0);
  }
}

TEST_CASE("csv: whole numbers of up to 9 digits read as from_chars reads them") {
  // Such cells take a shortcut past from_chars; every length, and the roundings of 2^24 + 1
  // and 10^9 - 1, must come out the same.
  for (const char *cell : {"0", "7", "007", "+5", "255", "65535", "16777217", "16777219", "123456789",
                           "999999999", "1000000001", "4294967297"}) {
    std::string text(cell[0] == '+' ? cell + 1 : cell);
    float want = 0;
    std::from_chars(text.data(), text.data() + text.size(), want);
    CHECK_MESSAGE(parse1(cell) == want, cell);
  }
  // Rows that leave the shortcut part way (a cell it does not take, a label beyond the
  // classes, a cell too few or too many) are read, or reported, whole: nothing of them is kept twice.
  Dataset d = read("1,2,0\n3,4e0,1\n5,6,2.0\n 7 , 8 ,+1\n");
  CHECK(d.rows == 4);
  CHECK(d.inputs[0].f == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(d.inputs[1].i == std::vector<int32_t>{0, 1, 2, 1});
  CHECK(errorOf("1,2,0\n3,4,3\n") == "F:2:5: error: label 3 of 'y' is outside the 3 classes 0..2\n");
  CHECK(errorOf("1,2,0\n3,4\n") == "F:2:4: error: expected 3 values, found 2\n");
  CHECK(errorOf("1,2,0\n3,4,1,5\n") == "F:2:7: error: expected 3 values, found 4\n");
}

TEST_CASE("csv: wrong number of values") {
  // Too few: reported where the line ends.
  CHECK(errorOf("a,b,c\n1,2,0\n1,2\n") == "F:3:4: error: expected 3 values, found 2\n");
  CHECK(errorOf("1,2  \r\n") == "F:1:4: error: expected 3 values, found 2\n");
  // A model as wide as 400 million values per row: the reader's memory follows the file (it
  // took 6 GB of cell pointers and reserved values before the first row).
  CHECK(errorOf("1,2\n3,4\n", {{"x", false, 400000000, 0}}) == "F:1:4: error: expected 400000000 values, found 2\n");
  // Too many: reported at the first value too many.
  CHECK(errorOf("1,2,0,7,8\n") == "F:1:7: error: expected 3 values, found 5\n");
  // One value per row: singular, as is the count of a row of one value.
  CHECK(errorOf("1,2\n", {{"x", false, 1, 0}}) == "F:1:3: error: expected 1 value, found 2\n");
  CHECK(errorOf("1\n", {{"x", false, 2, 0}}) == "F:1:2: error: expected 2 values, found 1\n");
  CHECK(errorOf("a,b,c\n1,2,0,\n") == "F:2:7: error: expected 3 values, found 4\n");
  // The BOM is not a column.
  CHECK(errorOf("\xEF\xBB\xBF" "1,2,0,9\n") == "F:1:7: error: expected 3 values, found 4\n");
  // Blank lines count as lines.
  CHECK(errorOf("a,b,c\n\n\n1,2\n") == "F:4:4: error: expected 3 values, found 2\n");
}

TEST_CASE("csv: values that are not numbers") {
  CHECK(errorOf("a,b,c\n1,abc,0\n") == "F:2:3: error: 'abc' is not a number\n");
  CHECK(errorOf("a,b,c\n1,  2x,0\n") == "F:2:5: error: '2x' is not a number\n");
  CHECK(errorOf("a,b,c\n1,,0\n") == "F:2:3: error: missing value (column 2 of 3 is empty)\n");
  CHECK(errorOf("a,b,c\n1,\"2\",0\n") == "F:2:3: error: '\"2\"' is not a number\n");
  CHECK(errorOf("a,b,c\n1,é,0\n") == "F:2:3: error: 'é' is not a number\n");
  CHECK(errorOf("a,b,c\n1,0x10,0\n") == "F:2:3: error: '0x10' is not a number\n");
  // Control characters are escaped, a tab kept, as in the quoted row (the error stays one line).
  CHECK(errorOf("a,b,c\n1,2\t\v3,0\n") == "F:2:3: error: '2\t\\x0b3' is not a number\n");
  // A CR that does not end a line is reported where it is (not taken for part of a header).
  CHECK(errorOf("a,b,c\n1,2\r3,0\n") == "F:2:4: error: a carriage return (CR) inside a line; lines end with LF or CR LF\n");
  CHECK(errorOf("1,2,0\r0,1,0\r") == "F:1:6: error: a carriage return (CR) inside a line; lines end with LF or CR LF\n");
  // A long cell is shortened.
  CHECK(errorOf("a,b,c\n1," + std::string(50, 'z') + ",0\n") ==
        "F:2:3: error: '" + std::string(37, 'z') + "...' is not a number\n");
  // ...by characters, never inside one; bytes that are not UTF-8 and control characters are
  // escaped, as in the quoted row.
  std::string e40, e37;
  for (int i = 0; i < 40; ++i) e40 += "\xC3\xA9";
  for (int i = 0; i < 37; ++i) e37 += "\xC3\xA9";
  CHECK(errorOf("a,b,c\n1," + e40 + ",0\n") == "F:2:3: error: '" + e40 + "' is not a number\n");
  CHECK(errorOf("a,b,c\n1," + e40 + "\xC3\xA9,0\n") == "F:2:3: error: '" + e37 + "...' is not a number\n");
  CHECK(errorOf("a,b,c\n1,caf\xE9,0\n") == "F:2:3: error: 'caf\\xe9' is not a number\n");
  CHECK(errorOf("a,b,c\n1,\xC3,0\n") == "F:2:3: error: '\\xc3' is not a number\n");
  CHECK(errorOf("a,b,c\n1,\x1b[31m,0\n") == "F:2:3: error: '\\x1b[31m' is not a number\n");
  CHECK(errorOf("a,b,c\n1,2\xC2\x9B,0\n") == "F:2:3: error: '2\\xc2\\x9b' is not a number\n");
}

TEST_CASE("csv: NaN and infinity are refused") {
  CHECK(errorOf("nan,1,0\n") == "F:1:1: error: 'nan' is not a finite number\n");
  CHECK(errorOf("a,b,c\n1,inf,0\n") == "F:2:3: error: 'inf' is not a finite number\n");
  CHECK(errorOf("a,b,c\n1,-Infinity,0\n") == "F:2:3: error: '-Infinity' is not a finite number\n");
  CHECK(errorOf("a,b,c\n1,1e39,0\n") == "F:2:3: error: '1e39' is too large for a float\n");
  // Beyond double's range: an error too (the value was read from an unset double).
  CHECK(errorOf("a,b,c\n1,1e400,0\n") == "F:2:3: error: '1e400' is too large for a float\n");
  CHECK(errorOf("a,b,c\n1,-1e4000,0\n") == "F:2:3: error: '-1e4000' is too large for a float\n");
}

TEST_CASE("csv: labels") {
  CHECK(errorOf("a,b,c\n1,2,1.5\n") == "F:2:5: error: label 1.5 of 'y' is not a whole number\n");
  CHECK(errorOf("a,b,c\n1,2,3\n") == "F:2:5: error: label 3 of 'y' is outside the 3 classes 0..2\n");
  CHECK(errorOf("a,b,c\n1,2, -1\n") == "F:2:6: error: label -1 of 'y' is outside the 3 classes 0..2\n");
  CHECK(errorOf("a,b,c\n1,2,one\n") == "F:2:5: error: label 'one' of 'y' is not a number\n");
  CHECK(errorOf("a,b,c\n1,2,nan\n") == "F:2:5: error: label nan of 'y' is not a whole number\n");
  CHECK(errorOf("a,b,c\n1,2,1e-400\n") == "F:2:5: error: label 1e-400 of 'y' is not a whole number\n");
  // Beyond double's range, a label is out of range as 1e30 is, not "not whole".
  CHECK(errorOf("a,b,c\n1,2,1e400\n") == "F:2:5: error: label 1e400 of 'y' is outside the 3 classes 0..2\n");
  CHECK(errorOf("a,b,c\n1,2,-1e999\n") == "F:2:5: error: label -1e999 of 'y' is outside the 3 classes 0..2\n");
  // Without a class count, any whole number that fits int32 is a label.
  std::vector<InputSpec> open = {{"x", false, 2, 0}, {"y", true, 1, 0}};
  CHECK(read("1,2,-7\n", open).inputs[1].i == std::vector<int32_t>{-7});
  CHECK(errorOf("1,2,3e10\n", open) == "F:1:5: error: label 3e10 of 'y' is out of range\n");
  CHECK(errorOf("1,2,1e999\n", open) == "F:1:5: error: label 1e999 of 'y' is out of range\n");
  CHECK(errorOf("1,2,-1e999\n", open) == "F:1:5: error: label -1e999 of 'y' is out of range\n");
  CHECK(errorOf("1,2,inf\n", open) == "F:1:5: error: label inf of 'y' is not a whole number\n");
}

TEST_CASE("csv: an error quotes its row, with a caret under the column") {
  CHECK(errorOf("a,b,y\n1,2,0\n1,x,1\n", xy(), true) ==
        "F:3:3: error: 'x' is not a number\n1,x,1\n  ^\n");
  // Too few values: the caret is where the row ends.
  CHECK(quoteOf("1,2\n") == "1,2\n   ^\n");
  // A tab stays a tab in both lines, so the caret lines up on the terminal; characters count
  // as characters, not bytes; the BOM is not shown.
  CHECK(quoteOf("1,\t\xC3\xA9,0\n") == "1,\t\xC3\xA9,0\n  \t^\n");
  CHECK(errorOf("\xEF\xBB\xBF" "1,2,0,\t9\n", xy(), true) ==
        "F:1:8: error: expected 3 values, found 4\n1,2,0,\t9\n      \t^\n");
  // Control characters and bytes that are not UTF-8 are escaped, the caret under the escape.
  CHECK(quoteOf("1,2\r3,0\n") == "1,2\\r3,0\n   ^\n");
  CHECK(quoteOf("\x1b[31m,2,0\n") == "\\x1b[31m,2,0\n^\n");
  CHECK(quoteOf("1,\x01,\xff\n") == "1,\\x01,\\xff\n  ^\n");
  CHECK(quoteOf("\xff,\x01,0\n") == "\\xff,\\x01,0\n^\n");
  CHECK(quoteOf("1,\xff,\x01\n") == "1,\\xff,\\x01\n  ^\n");
  // Stray UTF-8 continuation bytes: the caret under the first, where the cell begins.
  CHECK(quoteOf("1,\x80\x80\x80,0\n") == "1,\\x80\\x80\\x80,0\n  ^\n");
  CHECK(quoteOf("1,2,\xe2\x82\n") == "1,2,\\xe2\\x82\n    ^\n");
  // Bytes F5 to FF begin no UTF-8 sequence, not even with continuation bytes after them.
  CHECK(quoteOf("1,\xff\x80\x80,0\n") == "1,\\xff\\x80\\x80,0\n  ^\n");
  CHECK(quoteOf("1,\xf5\x80\x80\x80,0\n") == "1,\\xf5\\x80\\x80\\x80,0\n  ^\n");
  CHECK(quoteOf("1,\xf8\x88\x80,0\n") == "1,\\xf8\\x88\\x80,0\n  ^\n");
  CHECK(quoteOf("1,\xf4\x8f\xbf\xbfx,0\n") == "1,\xf4\x8f\xbf\xbfx,0\n  ^\n");  // U+10FFFF
  // C1 control characters (U+009B, a terminal's CSI) are escaped as C0 ones are.
  CHECK(quoteOf("1,\xc2\x9b""31m,0\n") == "1,\\xc2\\x9b31m,0\n  ^\n");
  CHECK(quoteOf("1,\xc2\xa0x,0\n") == "1,\xc2\xa0x,0\n  ^\n");  // U+00A0 is shown
  // A long row (784 values) is shown as a window around the column, `...` on the sides cut.
  std::string row, before;
  for (int i = 0; i < 784; ++i) {
    if (i == 400) before = row;
    row += (i ? "," : "") + std::string(i == 400 ? "x" : "0.25");
  }
  std::vector<InputSpec> wide = {{"x", false, 784, 0}};
  std::string q = quoteOf(row + "\n", wide);
  std::string shown = q.substr(0, q.find('\n')), caret = q.substr(q.find('\n') + 1);
  CHECK(shown.size() <= 90);
  CHECK(shown.rfind("...", 0) == 0);
  CHECK(shown.substr(shown.size() - 3) == "...");
  CHECK(row.find(shown.substr(3, shown.size() - 6)) != std::string::npos);
  REQUIRE(caret.size() >= 2);
  CHECK(caret.substr(caret.size() - 2) == "^\n");
  CHECK(caret.find_first_not_of(' ') == caret.size() - 2);
  CHECK(shown[caret.size() - 2] == 'x');
  CHECK(shown.substr(caret.size() - 3, 3) == ",x,");
  // Near the start, the window begins with the row; near the end, it ends with it.
  q = quoteOf("x" + row.substr(4) + "\n", wide);
  CHECK(q.rfind("x,0.25", 0) == 0);
  CHECK(q.substr(q.find('\n') - 3, 4) == "...\n");
  CHECK(q.substr(q.find('\n') + 1) == "^\n");
  q = quoteOf(row + ",7\n", wide);
  CHECK(q.rfind("...", 0) == 0);
  CHECK(q.substr(q.find('\n') - 6, 7) == "0.25,7\n");
}

TEST_CASE("csv: empty files") {
  CHECK(errorOf("") == "F: error: empty file (no data rows)\n");
  CHECK(errorOf("\n\r\n  \n") == "F: error: empty file (no data rows)\n");
  CHECK(errorOf("\xEF\xBB\xBF") == "F: error: empty file (no data rows)\n");
  CHECK(errorOf("a,b,c\n") == "F: error: no data rows (the file holds a header only)\n");
  CHECK(errorOf("a,b,c\n\n") == "F: error: no data rows (the file holds a header only)\n");
}

TEST_CASE("csv: a missing file") {
  try {
    readCsv("/nonexistent/gradc/data.csv", xy());
    FAIL("no error");
  } catch (const UserError &e) {
    SourceManager sm;
    CHECK(renderUserError(sm, e) == "/nonexistent/gradc/data.csv: error: cannot read file: No such file or directory\n");
  }
}

TEST_CASE("csv: the example data sets load") {
  std::string dir = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
                    "examples" / "data";
  Dataset d = readCsv(dir + "/digits_train.csv", {{"x", false, 64, 0}, {"y", true, 1, 10}});
  CHECK(d.rows == 1438);
  CHECK(d.inputs[0].f.size() == 1438 * 64);
  for (float v : d.inputs[0].f) REQUIRE((v >= 0 && v <= 1));
  Dataset t = readCsv(dir + "/diabetes_test.csv", {{"x", false, 10, 0}, {"y", false, 1, 0}});
  CHECK(t.rows == 88);
}
