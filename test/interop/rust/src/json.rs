//! One JSON object, written by hand: the peer needs no serde for a flat result line.
pub struct Json(Vec<(String, String)>);

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Json {
    pub fn new() -> Json {
        Json(Vec::new())
    }
    fn raw(mut self, key: &str, value: String) -> Json {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_string(), value));
        self
    }
    pub fn bool(self, key: &str, v: bool) -> Json {
        self.raw(key, v.to_string())
    }
    pub fn num(self, key: &str, v: impl Into<i128>) -> Json {
        self.raw(key, v.into().to_string())
    }
    pub fn str(self, key: &str, v: &str) -> Json {
        self.raw(key, quote(v))
    }
    pub fn strs(self, key: &str, v: &[String]) -> Json {
        let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
        self.raw(key, format!("[{}]", items.join(",")))
    }
    pub fn nums(self, key: &str, v: &[u32]) -> Json {
        let items: Vec<String> = v.iter().map(|n| n.to_string()).collect();
        self.raw(key, format!("[{}]", items.join(",")))
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items: Vec<String> = self.0.iter().map(|(k, v)| format!("{}:{}", quote(k), v)).collect();
        write!(f, "{{{}}}", items.join(","))
    }
}
