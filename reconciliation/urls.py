from django.urls import path

from . import api

urlpatterns = [
    path("reconciliation/reports", api.UploadReportView.as_view(), name="recon-upload"),
    path("reconciliation/reports/<int:pk>", api.ImportDetailView.as_view(), name="recon-import"),
    path("reconciliation/runs", api.StartRunView.as_view(), name="recon-start-run"),
    path("reconciliation/runs/<int:pk>", api.RunDetailView.as_view(), name="recon-run"),
    path("reconciliation/breaks", api.BreakListView.as_view(), name="recon-breaks"),
    path("reconciliation/report.csv", api.DailyReportView.as_view(), name="recon-report"),
]
