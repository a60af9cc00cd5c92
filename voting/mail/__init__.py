"""Mail transport: the embedded SMTP server, Maildir inboxes, IMAP, and sending."""
