//! privacyIDEA's SMTP SMS provider: a mail to an email-to-SMS gateway, with
//! `{otp}` and `{phone}` tags in `mailto`, `subject` and `body`.

use async_trait::async_trait;

use super::smtp::Mailer;
use super::template::render;
use super::{Message, SendOutcome, Sender};
use crate::config::PhoneRewrite;

pub struct SmsSmtpSender {
    mailer: Mailer,
    mailto: String,
    subject: String,
    body: String,
    rewrite: Option<PhoneRewrite>,
}

impl SmsSmtpSender {
    pub fn new(
        mailer: Mailer,
        mailto: &str,
        subject: &str,
        body: &str,
        regexp: &str,
    ) -> Result<Self, String> {
        Ok(Self {
            mailer,
            mailto: mailto.to_string(),
            subject: subject.to_string(),
            body: body.to_string(),
            rewrite: if regexp.is_empty() {
                None
            } else {
                Some(PhoneRewrite::parse(regexp)?)
            },
        })
    }
}

#[async_trait]
impl Sender for SmsSmtpSender {
    fn kind(&self) -> &'static str {
        "sms-smtp"
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        let phone = match &self.rewrite {
            Some(r) => r.apply(&m.send_to),
            None => m.send_to.clone(),
        };
        let tags = [
            ("otp", m.code.as_str()),
            ("phone", phone.as_str()),
            ("text", m.text.as_str()),
        ];
        let to = render(&self.mailto, &tags);
        let subject = render(&self.subject, &tags);
        let body = render(&self.body, &tags);
        self.mailer.send(&to, &subject, body, None).await
    }

    async fn check_health(&self) -> Option<Result<(), String>> {
        Some(self.mailer.probe().await)
    }
}
