//! `NationalId::parse`: never panics; what it accepts round-trips and has a real birth date;
//! and for 17 digits with a real date exactly one check character of `0`-`9`, `X` is accepted.
#![no_main]

use chrono::Datelike;
use danbao_domain::NationalId;
use libfuzzer_sys::fuzz_target;

fn check_accepted(text: &str) {
    let Ok(id) = NationalId::parse(text) else {
        return;
    };
    assert!(id.as_str().eq_ignore_ascii_case(text));
    assert_eq!(NationalId::parse(id.as_str()), Ok(id.clone()));
    let birth = id.birth_date();
    assert!(birth.year() >= 1800);
    assert_eq!(id.age_on(birth), Ok(0));
    assert!(id.age_on(birth.pred_opt().unwrap()).is_err());
    let masked = id.masked();
    assert_eq!(masked.len(), 18);
    assert_eq!(&masked[..6], id.region_prefix());
    assert!(
        !format!("{id:?}").contains(&id.as_str()[6..14]),
        "Debug leaks the birth date"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_accepted(text);
    }
    // The same bytes read as 17 digits: at most one check character fits.
    if data.len() >= 17 {
        let digits: String = data[..17]
            .iter()
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        let accepted: Vec<char> = "0123456789X"
            .chars()
            .filter(|c| NationalId::parse(&format!("{digits}{c}")).is_ok())
            .collect();
        assert!(accepted.len() <= 1, "{digits}: {accepted:?}");
        for c in accepted {
            check_accepted(&format!("{digits}{c}"));
        }
    }
});
