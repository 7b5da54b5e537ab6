from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from detector.centre import open311, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="centre/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("cases/", views.case_list, name="cases"),
    path("cases/rows/", views.case_rows, name="case-rows"),
    path("cases/<int:pk>/", views.case_page, name="case"),
    path("cases/<int:pk>/move/", views.case_move, name="case-move"),
    path("evidence/<int:pk>.jpg", views.evidence, name="evidence"),
    path("photos/<int:pk>.jpg", views.photo, name="photo"),
    path("officer/", views.officer, name="officer"),
    path("fleet/", views.fleet_page, name="fleet"),
    path("figures/", views.figures_page, name="figures"),
    path("open311/v2/services.json", open311.services, name="open311-services"),
    path("open311/v2/requests.json", open311.requests, name="open311-requests"),
    path("open311/v2/requests/<int:pk>.json", open311.request, name="open311-request"),
    path("admin/", admin.site.urls),
]
