from django.db import migrations, models

# The protocol each old adapter imitated: existing providers keep their money flows.
_PROTOCOL_OF_KIND = {
    "card": "stripe",
    "ewallet": "skrill",
    "open_banking": "berlin_group",
    "crypto": "btcpay",
}


def set_protocols(apps, schema_editor):
    PaymentProvider = apps.get_model("payments", "PaymentProvider")
    for kind, protocol in _PROTOCOL_OF_KIND.items():
        PaymentProvider.objects.filter(kind=kind).update(protocol=protocol)


class Migration(migrations.Migration):
    dependencies = [("payments", "0004_deposit_payer_instrument")]

    operations = [
        migrations.AddField(
            model_name="paymentprovider",
            name="protocol",
            field=models.CharField(
                choices=[
                    ("stripe", "Stripe (PaymentIntents)"),
                    ("adyen", "Adyen (Checkout API)"),
                    ("skrill", "Skrill (Quick Checkout)"),
                    ("btcpay", "BTCPay Server (Greenfield API)"),
                    ("berlin_group", "Berlin Group NextGenPSD2 (PIS)"),
                ],
                default="stripe",
                max_length=16,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(set_protocols, migrations.RunPython.noop),
    ]
