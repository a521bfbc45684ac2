"""Push notifications: rules, evaluation of events, counts, pushers and notifications."""
