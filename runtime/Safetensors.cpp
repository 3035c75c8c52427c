// safetensors reading (F32, and F64 kept as double and narrowed to float) with full
// validation, atomic writing (F32 and F64, through writeFileAtomic), and the exact F64 copies
// a float64 run stores beside its F32 tensors. The format is described in Safetensors.h.
#include "runtime/Safetensors.h"

#include <algorithm>
#include <cerrno>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/Files.h"
#include "support/Diagnostics.h"

namespace gradc::rt {

using json = nlohmann::ordered_json;

const NamedTensor *TensorFile::find(const std::string &name) const {
  for (const NamedTensor &t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void TensorFile::checkReadable(const std::string &path, const std::string &name) const {
  if (auto it = otherDtypes.find(name); it != otherDtypes.end())
    fileError(path, "tensor '{}' has dtype {}; gradc reads F32 and F64", name, it->second);
}

std::string TensorFile::otherModelNote(const std::string &modelHash) const {
  auto it = metadata.find("gradc.model_hash");
  if (it == metadata.end() || modelHash.empty() || it->second == modelHash) return "";
  return fmt::format(" (the checkpoint was written for another model: model hash {}, this model's is {})",
                     it->second, modelHash);
}

void TensorFile::warnIfOtherModel(const std::string &path, const std::string &modelHash) const {
  if (!otherModelNote(modelHash).empty())
    std::cerr << oneLine(fmt::format("{}: warning: the checkpoint was written for another version of the "
                                     "model (the shapes agree, so it is used)", path));
}

std::string exactCopyName(const std::string &name) { return name + ".f64"; }

const NamedTensor *exactCopy(const TensorFile &file, const NamedTensor &t) {
  const NamedTensor *c = file.find(exactCopyName(t.name));
  if (!c || !c->f64 || c->shape != t.shape || c->data64.size() != t.data.size()) return nullptr;
  for (size_t i = 0; i < t.data.size(); ++i) {
    float rounded = static_cast<float>(c->data64[i]);
    bool same = std::bit_cast<uint32_t>(rounded) == std::bit_cast<uint32_t>(t.data[i]) ||
                (std::isnan(rounded) && std::isnan(t.data[i]));
    if (!same) return nullptr;
  }
  return c;
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

constexpr int kMaxHeaderDepth = 16;
constexpr uint64_t kMaxStreamHeader = 100'000'000;

// A non-negative integer of the header that fits comfortably in int64 (sizes and offsets).
bool asSize(const json &j, uint64_t &out) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) return false;
  out = j.get<uint64_t>();
  return out < (uint64_t(1) << 62);
}

struct Entry {
  std::string name;
  std::string dtype;
  size_t elementSize;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

Entry parseEntry(const std::string &path, const std::string &name, const json &j) {
  if (!j.is_object()) fileError(path, "tensor '{}' is not described by a JSON object", name);
  for (const char *key : {"dtype", "shape", "data_offsets"})
    if (!j.contains(key)) fileError(path, "tensor '{}' has no '{}'", name, key);
  Entry e{name, "", 0, {}, 0, 0};
  const json &dtype = j["dtype"];
  if (!dtype.is_string()) fileError(path, "tensor '{}' has a dtype that is not a string", name);
  std::string dt = dtype.get<std::string>();
  e.dtype = dt;
  if (dt == "F32" || dt == "I32" || dt == "U32") e.elementSize = 4;
  else if (dt == "F64" || dt == "I64" || dt == "U64") e.elementSize = 8;
  else if (dt == "F16" || dt == "BF16" || dt == "I16" || dt == "U16") e.elementSize = 2;
  else if (dt == "BOOL" || dt == "U8" || dt == "I8" || dt == "F8_E5M2" || dt == "F8_E4M3") e.elementSize = 1;
  else fileError(path, "tensor '{}' has dtype {}, which is not a safetensors dtype", name, dt);

  const json &shape = j["shape"];
  if (!shape.is_array()) fileError(path, "tensor '{}' has a shape that is not a list", name);
  uint64_t elements = 1;
  for (const json &d : shape) {
    uint64_t n;
    if (!asSize(d, n)) {
      if (d.is_number_unsigned())
        fileError(path, "tensor '{}' has a shape entry {} too large for any file (2^62 or more)", name,
                  d.get<uint64_t>());
      fileError(path, "tensor '{}' has a shape entry that is not a size", name);
    }
    e.shape.push_back(static_cast<int64_t>(n));
    elements = n == 0 || elements <= (uint64_t(1) << 62) / n ? elements * n : uint64_t(1) << 62;
  }
  const json &off = j["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !asSize(off[0], e.begin) || !asSize(off[1], e.end)) {
    // Two whole numbers, but beyond what any file holds: said so, not "not two sizes".
    if (off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned())
      fileError(path, "tensor '{}' has data_offsets [{}, {}] beyond any file (2^62 bytes or more)", name,
                off[0].get<uint64_t>(), off[1].get<uint64_t>());
    fileError(path, "tensor '{}' has data_offsets that are not two sizes", name);
  }
  if (e.begin > e.end) fileError(path, "tensor '{}' has data_offsets that end before they begin", name);
  uint64_t need = elements >= (uint64_t(1) << 59) ? uint64_t(1) << 62 : elements * e.elementSize;
  if (e.end - e.begin != need)
    fileError(path, "tensor '{}' of shape {} and dtype {} needs {} bytes, but its data_offsets give {}",
              name, shapeText(e.shape), dt, need, e.end - e.begin);
  return e;
}

std::string readAll(const std::string &path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fileError(path, "is a directory, not a safetensors file");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) fileError(path, "{}", cannotRead(errno));
  std::ostringstream ss;
  if (std::filesystem::is_regular_file(path, ec)) checkFitsInMemory(path, std::filesystem::file_size(path, ec));
  // A pipe or a device is read on only while it looks like a safetensors file (the header a
  // JSON object of at most 100 MB): /dev/zero is not read forever.
  if (!std::filesystem::is_regular_file(path, ec)) {
    char head[9];
    in.read(head, sizeof head);
    ss.write(head, in.gcount());
    if (in.gcount() == sizeof head) {
      uint64_t headerLen = 0;
      for (int i = 7; i >= 0; --i) headerLen = (headerLen << 8) | static_cast<unsigned char>(head[i]);
      if (head[8] != '{' || headerLen > kMaxStreamHeader)
        fileError(path, "not a safetensors file: the header is not a JSON object of at most {} bytes",
                  kMaxStreamHeader);
    }
  }
  ss << in.rdbuf();
  if (in.bad()) fileError(path, "{}", cannotRead(errno));
  return ss.str();
}

}  // namespace

const NamedTensor &TensorFile::param(const std::string &path, const std::string &name,
                                     const std::vector<int64_t> &shape, const std::string &modelHash) const {
  checkReadable(path, name);
  const NamedTensor *t = find(name);
  if (!t)
    fileError(path, "no tensor for the model's param '{}' (of shape {}){}", name, shapeText(shape),
              otherModelNote(modelHash));
  if (t->shape != shape)
    fileError(path, "tensor '{}' has shape {}, but the model's param '{}' has shape {}{}", name,
              shapeText(t->shape), name, shapeText(shape), otherModelNote(modelHash));
  return *t;
}

TensorFile readSafetensors(const std::string &path) {
  std::string bytes = readAll(path);
  if (bytes.size() < 8)
    fileError(path, "not a safetensors file: {} bytes, too short for the header length", bytes.size());
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i) headerLen = (headerLen << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  if (headerLen > bytes.size() - 8)
    fileError(path, "not a safetensors file: the header length {} runs past the end of the file ({} bytes)",
              headerLen, bytes.size());
  // The JSON object starts the header: white space may follow it, never precede it (the
  // reference implementation refuses that as InvalidHeaderStart). Other first bytes make
  // no JSON object, reported below.
  const char *headerText = bytes.data() + 8;
  char first = headerLen > 0 ? headerText[0] : '{';
  if (first == ' ' || first == '\t' || first == '\n' || first == '\r')
    fileError(path, "the safetensors header begins with white space; it must begin with '{{' (spaces may "
              "only pad it after the JSON object)");
  // The JSON object may be followed by white space only (the format pads it with spaces;
  // JSON readers, the format's own among them, take tabs and line breaks there too). A NUL
  // byte is never JSON, but the JSON parser takes it for the end of its input, so it is
  // refused here: a header padded with NULs is a damaged file.
  if (const void *nul = std::memchr(headerText, '\0', headerLen))
    fileError(path, "the safetensors header holds a NUL byte (at byte {} of the file); it may be padded "
              "with white space only (spaces, tabs, line breaks)", 8 + (static_cast<const char *>(nul) - headerText));
  // A header nests three deep (tensor, entry, shape); a deeper one is refused while parsing,
  // before copies of it recurse through the nesting. A name given twice in one object (two
  // tensors 'W', a tensor with two dtypes, a metadata key) is refused too, as the reference
  // implementation refuses two tensors of one name: which one was meant is unknown, and the
  // JSON reader would keep the last silently.
  struct Object {
    std::unordered_set<std::string> keys;
    std::string lastKey;
  };
  std::vector<Object> objects;
  auto checked = [&](int depth, json::parse_event_t event, json &parsed) {
    using E = json::parse_event_t;
    if ((event == E::object_start || event == E::array_start) && depth >= kMaxHeaderDepth)
      fileError(path, "the safetensors header nests more than {} deep", kMaxHeaderDepth);
    if (event == E::object_start) objects.emplace_back();
    else if (event == E::object_end) objects.pop_back();
    else if (event == E::key) {
      Object &o = objects.back();
      std::string key = parsed.get<std::string>();
      if (!o.keys.insert(key).second) {
        if (objects.size() == 1 && key == "__metadata__") fileError(path, "the safetensors header holds __metadata__ twice");
        if (objects.size() == 1) fileError(path, "the safetensors header holds two tensors named '{}'", key);
        const std::string &owner = objects[0].lastKey;
        if (objects.size() == 2)
          fileError(path, "{} names '{}' twice in the safetensors header",
                    owner == "__metadata__" ? std::string("__metadata__") : fmt::format("tensor '{}'", owner), key);
        fileError(path, "the safetensors header names '{}' twice in one object", key);
      }
      o.lastKey = std::move(key);
    }
    return true;
  };
  json header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(headerLen),
                            checked, /*allow_exceptions=*/false);
  if (header.is_discarded()) fileError(path, "the safetensors header is not valid JSON");
  if (!header.is_object()) fileError(path, "the safetensors header is not a JSON object");

  TensorFile file;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fileError(path, "__metadata__ is not a JSON object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) fileError(path, "__metadata__ entry '{}' is not a string", m.key());
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parseEntry(path, it.key(), it.value()));
  }

  uint64_t dataLen = bytes.size() - 8 - headerLen;
  for (const Entry &e : entries)
    if (e.end > dataLen)
      fileError(path, "tensor '{}' has data_offsets [{}, {}] beyond the data ({} bytes)", e.name, e.begin,
                e.end, dataLen);
  std::vector<const Entry *> byOffset;
  for (const Entry &e : entries) byOffset.push_back(&e);
  std::sort(byOffset.begin(), byOffset.end(),
            [](const Entry *a, const Entry *b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
  for (size_t i = 1; i < byOffset.size(); ++i)
    if (byOffset[i]->begin < byOffset[i - 1]->end)
      fileError(path, "tensors '{}' and '{}' overlap", byOffset[i - 1]->name, byOffset[i]->name);
  // The tensors cover the data exactly, as the safetensors format requires (its reference
  // implementation refuses a buffer they do not cover): bytes of no tensor, between tensors
  // or after the last, are a truncated header or a damaged file.
  auto bytesText = [](uint64_t n) { return fmt::format("{} byte{}", n, n == 1 ? "" : "s"); };
  uint64_t covered = 0;
  const Entry *previous = nullptr;
  for (const Entry *e : byOffset) {
    if (e->begin > covered) {
      if (previous)
        fileError(path, "no tensor covers bytes {} to {} of the data, between tensors '{}' and '{}'",
                  covered, e->begin, previous->name, e->name);
      fileError(path, "no tensor covers the first {} of the data, before tensor '{}'", bytesText(e->begin), e->name);
    }
    covered = e->end;
    previous = e;
  }
  if (covered < dataLen)
    fileError(path, "no tensor covers the last {} of the data, {} (the data is {}; a safetensors file "
              "ends with its last tensor's data)", bytesText(dataLen - covered),
              previous ? fmt::format("after tensor '{}'", previous->name) : std::string("after a header of no tensors"),
              bytesText(dataLen));

  const char *data = bytes.data() + 8 + headerLen;
  for (const Entry &e : entries) {
    if (e.dtype != "F32" && e.dtype != "F64") {
      file.otherDtypes[e.name] = e.dtype;
      continue;
    }
    NamedTensor t;
    t.name = e.name;
    t.shape = e.shape;
    t.f64 = e.elementSize == 8;
    size_t n = static_cast<size_t>((e.end - e.begin) / e.elementSize);
    t.data.resize(n);
    const char *p = data + e.begin;
    if (t.f64) {
      t.data64.resize(n);
      if (n > 0) std::memcpy(t.data64.data(), p, 8 * n);
      for (size_t i = 0; i < n; ++i) t.data[i] = static_cast<float>(t.data64[i]);
    } else if (n > 0) {
      std::memcpy(t.data.data(), p, 4 * n);
    }
    file.tensors.push_back(std::move(t));
  }
  return file;
}

std::string safetensorsBytes(const TensorFile &file) {
  json header = json::object();
  if (!file.metadata.empty()) {
    json meta = json::object();
    for (auto &[k, v] : file.metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::string data;
  for (const NamedTensor &t : file.tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    size_t values = t.f64 ? t.data64.size() : t.data.size();
    GRADC_ASSERT(n == static_cast<int64_t>(values), "tensor {} has {} values for shape {}", t.name,
                 values, shapeText(t.shape));
    size_t begin = data.size();
    if (t.f64) data.append(reinterpret_cast<const char *>(t.data64.data()), values * sizeof(double));
    else data.append(reinterpret_cast<const char *>(t.data.data()), values * sizeof(float));
    header[t.name] = {{"dtype", t.f64 ? "F64" : "F32"}, {"shape", t.shape},
                      {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  bytes += text;
  bytes += data;
  return bytes;
}

void writeSafetensors(const std::string &path, const TensorFile &file) { writeFileAtomic(path, safetensorsBytes(file)); }

}  // namespace gradc::rt
