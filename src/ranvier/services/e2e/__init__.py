"""End-to-end encryption: device and cross-signing keys, one-time keys, device-list
tracking over federation, server-side key backup and dehydrated devices (spec: C-S API >
End-to-End Encryption; S-S API > Device Management, End-to-End Encryption)."""
